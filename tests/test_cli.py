"""The dispatcher: usage, unknown commands, and a closed pipe."""

import subprocess
import sys

from lab_hooks.cli import COMMANDS, main


def test_usage_and_unknown_command(capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_closed_pipe_is_not_a_traceback():
    proc = subprocess.run(
        f"{sys.executable} -m lab_hooks --help | head -c1", shell=True, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
