"""Knowledge documents kept inside the taxonomy repository (our offline extension:
`document.repo` names a folder of the taxonomy repo, `.` for its root)."""

from __future__ import annotations

from pathlib import Path

HEAD = "HEAD"  # an in-repo document is read at the same commit as its leaf


def local_document_dir(repo: str, root: str | Path) -> Path | None:
    """The folder of the taxonomy repo that `document.repo` names, or None when
    it names none (a URL, an absolute path, `..`, a link out of the repo, or a
    folder that does not exist). lab_hooks.sdg.documents reads the same folder."""
    if "://" in repo or ":" in repo or repo.startswith(("/", "~", "\\")) or ".." in Path(repo).parts:
        return None
    base = Path(root).resolve()
    folder = (base / repo).resolve()
    return folder if folder.is_relative_to(base) and folder.is_dir() else None


def glob_files(folder: Path, pattern: str) -> list[Path]:
    """The files a glob matches below a folder; an invalid glob matches nothing."""
    try:
        return [p for p in folder.glob(pattern) if p.is_file()]
    except (ValueError, OSError):  # e.g. "a**b", which pathlib refuses
        return []
