"""A throwaway PostgreSQL cluster on 127.0.0.1, for tests and benchmarks only (never the app).

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin/initdb`` and ``pg_ctl``; install
them with ``make system-deps``). PostgreSQL refuses to run as root, so as root the cluster is created
and run as the ``postgres`` system user (``runuser -u postgres --``) in a temporary folder it owns.

    with temporary_cluster() as url:   # postgresql+psycopg://vibcam@127.0.0.1:PORT/survey
        ...
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testing.ports import free_port

PG_USER = "vibcam"
PG_DATABASE = "survey"


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_bindir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/*/bin`` with initdb and pg_ctl, if any."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    candidates = [c for c in candidates if (c / "pg_ctl").exists()]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in path.parent.name.split(".") if x.isdigit())

    return max(candidates, key=version) if candidates else None


def _run_as() -> list[str] | None:
    """Command prefix to run PostgreSQL binaries as a non-root user ([] if we are not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (None if it can)."""
    if find_bindir() is None:
        return ("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                "apt-get install postgresql")
    if _run_as() is None:
        return "running as root without a 'postgres' user and runuser to run PostgreSQL as"
    return None


def _call(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ClusterError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def temporary_cluster(*, durable: bool = True, max_connections: int = 200) -> Iterator[str]:
    """Starts a fresh cluster with one database; yields its SQLAlchemy URL; stops and deletes it after.

    ``durable=False`` turns off fsync (faster tests); benchmarks keep it on to compare fairly with
    SQLite's ``synchronous=FULL``.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise ClusterError(reason)
    bindir, prefix = find_bindir(), _run_as()
    assert bindir is not None and prefix is not None
    base = Path(tempfile.mkdtemp(prefix="vibcam-pg-"))
    data, log = base / "data", base / "server.log"
    if prefix:
        shutil.chown(base, user="postgres", group="postgres")
    started = False
    try:
        _call([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
               "--locale=C", "--no-sync"], "initdb")
        sync = "on" if durable else "off"
        options = (f"-c listen_addresses=127.0.0.1 -k {base} -c max_connections={max_connections} "
                   f"-c fsync={sync} -c synchronous_commit={sync}")
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            port = free_port()
            done = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                   "-t", "60", "-o", f"-p {port} {options}", "start"],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr
            raise ClusterError(f"pg_ctl start failed: {tail.strip()}")
        _call([*prefix, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER,
               PG_DATABASE], "createdb")
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
