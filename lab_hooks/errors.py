"""The errors every command shares, and what each means for the exit code.

    LabHooksError   something this run could not do (a model backend, the store, a missing
                    asset or extra): exit 2
      InputError    the input named by the user is wrong (a leaf, a ref, a flag's file): exit 1,
                    one line, `file:line:col: ...` where there is a position

Each subpackage's own errors derive from one of these, so the dispatcher
(lab_hooks.cli) turns any of them into one line on stderr and its exit code,
never a traceback. Light on purpose: the hook path imports it.
"""

from __future__ import annotations


class LabHooksError(Exception):
    """A run that could not complete; the message is one line for the user."""

    exit_code = 2


class InputError(LabHooksError):
    """Bad input the user can fix; the message is one line (file:line:col where there is one)."""

    exit_code = 1


class MissingExtra(LabHooksError):
    """A command needs an optional dependency group that is not installed."""

    def __init__(self, extra: str, module: str):
        super().__init__(f"this command needs the [{extra}] extra ({module} is not installed): "
                         f"pip install 'lab-hooks[{extra}]'")


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
