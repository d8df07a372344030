"""What every `models` command shares: help that shows defaults, and one-line error messages."""
from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Append "(default: X)" to every option that has a meaningful default, with or without help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default is None or isinstance(action.default, bool) or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)".strip()


def one_line(error: BaseException) -> str:
    """The last line of an error message; errors re-raised from DataLoader workers carry the worker's
    traceback in their message and end with "ModuleName.ErrorType: the real message"."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    last = text.splitlines()[-1]
    prefix = f"{type(error).__name__}: "
    return last.split(prefix, 1)[-1] if prefix in last else last
