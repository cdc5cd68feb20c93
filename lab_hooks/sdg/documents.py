"""Knowledge documents: fetched at the leaf's pinned commit, chunked by the teacher's tokenizer.

A `document.repo` URL is cloned at `document.commit` once into `LAB_HOME/documents`
(https only: git's `ext::`, ssh and friends are refused, since leaves come from
pull requests). A `repo` that is not a URL is a folder inside the taxonomy; a
knowledge leaf without `document.repo` reads `patterns` beside its qna.yaml.
Leaves read from a commit (`GitTree`, e.g. `generate --head`) read such folders
from that commit's tree, written into the cache, never from the checkout.
Markdown is kept; other files (PDF) are skipped and reported. Chunks end at
heading boundaries and hold at most ~`CHUNK_TOKENS` teacher tokens.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lab_hooks.errors import InputError
from lab_hooks.taxonomy.documents import glob_regex, in_repo_folder, local_document_dir

CHUNK_TOKENS = 500
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # larger files in a commit's tree are not written out
MARKDOWN = (".md", ".markdown")
_HEADING = re.compile(r"^#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")


class DocumentError(InputError):
    """A knowledge leaf's documents cannot be had; the message says why."""


@dataclass(frozen=True)
class GitTree:
    """The commit that leaves were read from: their in-repo documents come from its tree
    (the taxonomy is the repository's root, as for `lab_hooks.diff.diff_taxonomy`)."""

    repo: Any  # git.Repo
    commit: str


def _install(src: Path, dest: Path) -> None:
    """Move a finished download into the cache; a concurrent one that got there first wins."""
    try:
        os.replace(src, dest)
    except OSError:
        if not dest.is_dir():
            raise


def _clone(repo: str, commit: str, cache: Path) -> Path:
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", commit or ""):
        raise DocumentError(f"document.commit {commit!r} is not a commit sha")
    dest = cache / f"{hashlib.sha256(repo.encode()).hexdigest()[:16]}-{commit}"
    if dest.is_dir():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".clone-"))
    git = ["git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
           "-c", "protocol.http.allow=always", "-c", "protocol.file.allow=always"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        for args in (["clone", "--quiet", "--no-checkout", "--", repo, str(tmp / "repo")],
                     ["-C", str(tmp / "repo"), "-c", "advice.detachedHead=false", "checkout", "--quiet", commit, "--"]):
            proc = subprocess.run(git + args, capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode:
                last = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
                raise DocumentError(f"cannot fetch {repo} at {commit}: {last}")
        _install(tmp / "repo", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _export(tree: GitTree, folder: str, patterns, cache: Path) -> Path:
    """The files of `folder` at the tree's commit that `patterns` can match, written into
    the cache once (keyed by the folder's tree sha); links and submodules are left out."""
    commit = tree.repo.commit(tree.commit)
    folder = posixpath.normpath(folder)
    try:
        sub = commit.tree if folder in ("", ".") else commit.tree / folder
    except KeyError:
        sub = None
    if sub is None or sub.type != "tree":
        raise DocumentError(f"folder {folder!r} is not in commit {commit.hexsha[:12]}")
    patterns = [str(p).lstrip("/") for p in patterns] if isinstance(patterns, list) else []
    dest = cache / f"tree-{sub.hexsha}-{hashlib.sha256(json.dumps(patterns).encode()).hexdigest()[:12]}"
    if dest.is_dir():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    regexes = [glob_regex(p) for p in patterns]
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".tree-"))
    try:
        for item in sub.traverse():
            rel = posixpath.relpath(item.path, sub.path) if sub.path else item.path
            if (item.type == "blob" and stat.S_ISREG(item.mode) and item.size <= MAX_DOCUMENT_BYTES
                    and ".." not in rel.split("/") and any(r.match(rel) for r in regexes)):
                target = tmp / "tree" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.data_stream.read())
        (tmp / "tree").mkdir(exist_ok=True)
        _install(tmp / "tree", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def document_root(document: dict, leaf_dir: Path, taxonomy_root: Path | None, cache: Path,
                  tree: GitTree | None = None) -> Path:
    """The directory `document.patterns` are relative to, fetching the repo if needed.

    A URL is cloned at `document.commit`; any other `repo` is a folder inside the
    taxonomy: in the checkout under `taxonomy_root`, or, with `tree`, in that
    commit's tree (`leaf_dir` is then the leaf's folder relative to the taxonomy).
    `file://` URLs are cloned only where LAB_HOOKS_ALLOW_FILE_REPOS=1 (local mirrors).
    """
    repo = str(document.get("repo") or "")
    patterns = document.get("patterns")
    if not repo:
        return leaf_dir if tree is None else _export(tree, Path(leaf_dir).as_posix(), patterns, cache)
    if repo.startswith("-") or "::" in repo:
        raise DocumentError(f"document.repo {repo!r} is not a URL or a path")
    if re.match(r"https?://", repo) or (repo.startswith("file://") and os.environ.get("LAB_HOOKS_ALLOW_FILE_REPOS") == "1"):
        return _clone(repo, str(document.get("commit", "")), cache)
    if "://" in repo or repo.startswith("git@"):
        raise DocumentError(f"document.repo {repo!r}: only https:// repositories are fetched")
    folder = in_repo_folder(repo)
    if folder is not None and tree is not None:
        return _export(tree, folder, patterns, cache)
    local = local_document_dir(repo, taxonomy_root or leaf_dir)
    if local is None:
        raise DocumentError(f"document.repo {repo!r} is neither an https URL nor a folder inside the taxonomy")
    return local


def read_documents(document: dict, root: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, markdown text) of each matched file in name order, and the names skipped."""
    patterns = document.get("patterns")
    if not isinstance(patterns, list) or not patterns:
        raise DocumentError("document.patterns is missing or empty")
    root = root.resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        for name in glob.glob(str(pattern), root_dir=root, recursive=True):
            path = (root / name).resolve()
            if path.is_file() and not (root / name).is_symlink() and path.is_relative_to(root):
                found[name] = path
    if not found:
        raise DocumentError(f"document.patterns {patterns} match no file")
    docs, skipped = [], []
    for name in sorted(found):
        if found[name].suffix.lower() in MARKDOWN:
            docs.append((name, found[name].read_text(encoding="utf-8", errors="replace")))
        else:
            skipped.append(name)
    if not docs:
        raise DocumentError(f"no markdown among the matched files ({', '.join(skipped)}); PDF is not read")
    return docs, skipped


def token_counter(teacher) -> tuple[Callable[[str], int], bool]:
    """Count tokens with the teacher's tokenizer; (counter, exact?). Without one: ~4 chars a token."""
    tokenizer = getattr(teacher, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "encode"):
        return (lambda text: len(tokenizer.encode(text, add_special_tokens=False))), True
    count = getattr(teacher, "count_tokens", None)
    if callable(count):
        return count, True
    return (lambda text: max(1, len(text) // 4)), False


def _sections(text: str) -> list[str]:
    """Markdown split before each heading line (headings inside code fences don't count)."""
    sections, current, fenced = [], [], False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        if _HEADING.match(line) and not fenced and current:
            sections.append("".join(current))
            current = []
        current.append(line)
    if current:
        sections.append("".join(current))
    return [s for s in sections if s.strip()]


def _split_long(text: str, count: Callable[[str], int], limit: int) -> list[str]:
    """A section over the limit: by paragraphs, and a paragraph over it by words."""
    pieces = []
    for para in re.split(r"\n\s*\n", text):
        if count(para) <= limit:
            pieces.append(para)
            continue
        words, current, used = para.split(), [], 0
        for word in words:
            n = count(" " + word)
            if current and used + n > limit:
                pieces.append(" ".join(current))
                current, used = [], 0
            current.append(word)
            used += n
        if current:
            pieces.append(" ".join(current))
    return _pack(pieces, count, limit, "\n\n")


def _pack(pieces: list[str], count: Callable[[str], int], limit: int, sep: str) -> list[str]:
    chunks, current = [], ""
    for piece in pieces:
        joined = f"{current}{sep}{piece}" if current else piece
        if current and count(joined) > limit:
            chunks.append(current)
            current = piece
        else:
            current = joined
    if current:
        chunks.append(current)
    return chunks


def chunk_markdown(text: str, count: Callable[[str], int], limit: int = CHUNK_TOKENS) -> list[str]:
    """Chunks of at most ~`limit` tokens that end at heading boundaries where they can."""
    pieces: list[str] = []
    for section in _sections(text):
        section = section.strip()
        pieces.extend([section] if count(section) <= limit else _split_long(section, count, limit))
    return [c.strip() for c in _pack(pieces, count, limit, "\n\n") if c.strip()]
