"""Where lab-hooks keeps what it computes and fetches: `LAB_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def lab_home() -> Path:
    """`$LAB_HOME`, else the user cache dir (on a runner: point it at a persistent disk)."""
    if os.environ.get("LAB_HOME"):
        return Path(os.environ["LAB_HOME"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lab-hooks"))
