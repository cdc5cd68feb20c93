"""Reading leaves from disk or from bytes, bounded against hostile input."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

from lab_hooks.errors import InputError
from lab_hooks.taxonomy.leaf import LEAF_NAMES, TOP_LEVELS, Leaf, build_leaf
from lab_hooks.taxonomy.yamlmarks import Pos, YamlError, load

MAX_LEAF_BYTES = 1_000_000  # the largest real qna.yaml is ~60 kB


class LeafError(InputError):
    """A leaf that cannot be read or parsed at all; `code` is its rule code."""

    def __init__(self, code: str, message: str, pos: Pos = (1, 1)):
        super().__init__(message)
        self.code, self.message, self.pos = code, message, pos


def decode(content: bytes) -> str:
    """UTF-8 text, or a LeafError at the line:col of the first bad byte."""
    if b"\0" in content:
        line = content.count(b"\n", 0, content.index(b"\0")) + 1
        raise LeafError("LH002", "binary file (NUL byte), expected UTF-8 YAML", (line, 1))
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = content[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise LeafError("LH002", f"invalid UTF-8 (byte 0x{content[exc.start]:02x})", (line, col)) from None
    return text.removeprefix("\ufeff")


def parse_leaf(content: bytes, file: str, attribution: str | None = None) -> Leaf:
    """Parse a leaf's bytes. Raises LeafError for unusable input."""
    if len(content) > MAX_LEAF_BYTES:
        raise LeafError("LH001", f"file is {len(content):,} bytes, over the {MAX_LEAF_BYTES:,}-byte limit")
    text = decode(content)
    if not text.strip():
        raise LeafError("LH004", "empty file")
    try:
        doc = load(text)
    except YamlError as exc:
        raise LeafError("LH003", exc.message, exc.pos) from None
    if doc.data is None:
        raise LeafError("LH004", "no YAML document (only comments or blank lines)")
    if not isinstance(doc.data, dict):
        raise LeafError("LH005", f"top level is a {type(doc.data).__name__}, expected a mapping")
    return build_leaf(doc, file, content, attribution, text)


def read_bounded(path: Path, limit: int = MAX_LEAF_BYTES) -> bytes:
    """A regular file's bytes; FIFOs, devices, symlinks and huge files are LeafErrors.

    Opened without following links and without blocking, then checked again on
    the open descriptor, so a file swapped for a FIFO or a link after the first
    look cannot hang or escape the check.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LeafError("LH001", f"cannot read: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise LeafError("LH001", f"is a symlink (to {os.readlink(path)}); leaves must be regular files")
    if not stat.S_ISREG(st.st_mode):
        raise LeafError("LH001", "not a regular file")
    if st.st_size > limit:
        raise LeafError("LH001", f"file is {st.st_size:,} bytes, over the {limit:,}-byte limit")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise LeafError("LH001", f"cannot read: {exc.strerror}") from None
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LeafError("LH001", "not a regular file")
        try:
            content = fh.read(limit + 1)
        except OSError as exc:
            raise LeafError("LH001", f"cannot read: {exc.strerror}") from None
    if len(content) > limit:
        raise LeafError("LH001", f"file is over the {limit:,}-byte limit")
    return content


def read_attribution(leaf_file: Path) -> str | None:
    """The text of the attribution.txt beside a leaf, if there is a readable one."""
    try:
        return decode(read_bounded(leaf_file.parent / "attribution.txt"))
    except LeafError:
        return None


def load_leaf_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Leaf:
    """Load a leaf from disk; `root` (the taxonomy root) makes its path exact."""
    path = Path(path)
    name = os.path.relpath(path, root) if root is not None else str(path)
    return parse_leaf(read_bounded(path), name, read_attribution(path))


def find_leaf_files(root: str | os.PathLike) -> Iterator[Path]:
    """Every qna.yaml/qna.yml under the taxonomy root's top-level trees, sorted."""
    root = Path(root)
    for top in sorted(TOP_LEVELS):
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name in LEAF_NAMES:
                    yield Path(dirpath) / name
