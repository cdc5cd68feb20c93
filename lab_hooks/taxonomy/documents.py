"""Knowledge documents kept inside the taxonomy repository (our offline extension:
`document.repo` names a folder of the taxonomy repo, `.` for its root).

One rule says which folder a `document.repo` names (`in_repo_folder`); the
validator, the diff and generation all go through it, whether they read the
checkout (`local_document_dir`) or a commit's tree.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

HEAD = "HEAD"  # an in-repo document is read at the same commit as its leaf


def in_repo_folder(repo: str) -> str | None:
    """The taxonomy-relative posix folder that `document.repo` names (`.` = the root),
    or None when it names none: a URL, a `host:path`, an absolute or `~` path, `..`."""
    if "://" in repo or ":" in repo or repo.startswith(("/", "~", "\\")) or ".." in re.split(r"[/\\]", repo):
        return None
    return posixpath.normpath(repo.replace("\\", "/"))


def local_document_dir(repo: str, root: str | Path) -> Path | None:
    """That folder in the checkout under `root`, or None when `repo` names none, a
    link leads out of the repo, or the folder does not exist."""
    folder = in_repo_folder(repo)
    if folder is None:
        return None
    base = Path(root).resolve()
    path = (base / folder).resolve()
    return path if path.is_relative_to(base) and path.is_dir() else None


def glob_regex(pattern: str) -> re.Pattern:
    """A glob as a regex over posix paths: `**/` spans folders, `*` and `?` do not."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_files(folder: Path, pattern: str) -> list[Path]:
    """The files a glob matches below a folder; an invalid glob matches nothing."""
    try:
        return [p for p in folder.glob(pattern) if p.is_file()]
    except (ValueError, OSError):  # e.g. "a**b", which pathlib refuses
        return []
