"""The models package's one error type, in a leaf module so that the factory (which reads weight files)
and the checkpoint module (which builds models) can both raise it without importing each other."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be used; the message is one line that names the file and the fix."""
