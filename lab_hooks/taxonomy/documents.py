"""Knowledge documents kept inside the taxonomy repository (our offline extension:
`document.repo` names a folder of the taxonomy repo, `.` for its root)."""

from __future__ import annotations

from pathlib import Path

HEAD = "HEAD"  # an in-repo document is read at the same commit as its leaf


def local_document_dir(repo: str, root: str | Path) -> Path | None:
    """The folder of the taxonomy repo that `document.repo` names, or None when
    it names none (a URL, an absolute path, `..`, or a folder that does not exist)."""
    if "://" in repo or ":" in repo or repo.startswith(("/", "~", "\\")) or ".." in Path(repo).parts:
        return None
    folder = Path(root) / repo
    return folder if folder.is_dir() else None


def glob_files(folder: Path, pattern: str) -> list[Path]:
    """The files a glob matches below a folder; an invalid glob matches nothing."""
    try:
        return [p for p in folder.glob(pattern) if p.is_file()]
    except (ValueError, OSError):  # e.g. "a**b", which pathlib refuses
        return []
