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


def document_files(document: dict, root: str | Path) -> list[Path] | None:
    """The files an in-repo document's patterns match, sorted and without repeats;
    None when the document lives in another repository."""
    repo = document.get("repo")
    folder = local_document_dir(repo, root) if isinstance(repo, str) and repo else None
    if folder is None:
        return None
    patterns = [p for p in document.get("patterns") or [] if isinstance(p, str) and p and ".." not in Path(p).parts
                and not Path(p).is_absolute()]
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
