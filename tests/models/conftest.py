"""One thread per test process: on the shared 2-core machine, two OpenMP threads per process spin
against other processes and run up to 10x slower; subprocesses inherit OMP_NUM_THREADS=1."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread(monkeypatch: pytest.MonkeyPatch):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(previous)
