"""What every benchmark in bench/ shares: the machine header, and the `--smoke` contract.

Figures only mean something next to the CPU they were measured on (AVX2-only and AVX-512-BF16
machines differ by 2x on the same code), so every benchmark starts by printing `machine_header()`.
Every `bench/*.py` also takes `--smoke`: tiny sizes, a few seconds, exit 0, so the test suite
(tests/bench/test_bench_smoke.py) can check that each still runs. A benchmark that cannot run for want
of a system tool (chromium, PostgreSQL) exits with MISSING_SYSTEM_DEPENDENCY and says how to install it.
"""
from __future__ import annotations

import argparse
import os
import platform
from contextlib import ExitStack
from pathlib import Path

#: exit status for "a system dependency is missing" (the automake convention for a skipped test)
MISSING_SYSTEM_DEPENDENCY = 77
SMOKE_HELP = "tiny sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def add_smoke_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def cpu_summary() -> str:
    """'AVX512, native bf16: yes' -- torch's dispatch level and whether bf16 matmuls run natively."""
    import torch

    from models.precision import cpu_has_native_bf16

    native = "yes" if cpu_has_native_bf16() else "no"
    return f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native}"


def machine_header() -> str:
    """One line: CPU model and capability, cores, torch threads, load (the machine is shared)."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {_cpu_model()}; CPU capability {cpu_summary()}; {os.cpu_count()} cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads; load average {load:.1f}")


def print_header(title: str) -> None:
    print(f"== {title}")
    print(machine_header(), flush=True)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def database_url(backend: str, folder: Path, stack: ExitStack) -> str | None:
    """A fresh database for one benchmark backend: a SQLite file in `folder`, or a throwaway local
    PostgreSQL cluster that lives as long as `stack`; None (with a note) when PostgreSQL cannot start."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'load.db'}"
    from testing.postgres import ClusterError, temporary_cluster

    try:
        return stack.enter_context(temporary_cluster(durable=True))
    except ClusterError as exc:
        print(f"note: PostgreSQL skipped: {exc}")
        return None
