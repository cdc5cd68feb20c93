"""Where lab-hooks keeps what it computes and fetches: `LAB_HOME`."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def lab_home() -> Path:
    """`$LAB_HOME`, else the user cache dir (on a runner: point it at a persistent disk).

    On Linux that is the XDG rule, written out here because the pre-commit hook
    asks on every commit and importing platformdirs would cost it more than
    its own checks of a leaf; elsewhere platformdirs knows the convention.
    """
    if os.environ.get("LAB_HOME"):
        return Path(os.environ["LAB_HOME"])
    if sys.platform.startswith("linux"):
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        return Path(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache"), "lab-hooks")
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lab-hooks"))
