"""A free TCP port on 127.0.0.1, for the throwaway servers tests start (PostgreSQL, Streamlit)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (another process may take it before we bind it: retry then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
