"""Knowledge documents: fetched at the leaf's pinned commit, chunked by the teacher's tokenizer.

A `document.repo` URL is fetched at `document.commit` once into `LAB_HOME/documents`.
Leaves come from pull requests, so the fetch is fenced: the URL must pass the
validator's own rule (`url_problem`: https, a host on the taxonomy's
`document_hosts`, never a private or IP-literal one); git runs with no user or
system config, no credential helper or prompt, no token in its environment, no
redirects, and only the https protocol; the fetch is shallow (that one commit)
and blob-limited (files over MAX_DOCUMENT_BYTES are not downloaded), its pack is
capped at MAX_FETCH_BYTES, and only the commit's regular files are kept (no
`.git`, links or submodules). Errors name the URL as the leaf wrote it and a
reason from a fixed list, never what the server said. The cache is bounded
(MAX_CACHE_BYTES, least recently used first). A `repo` that is not a URL is a folder inside the taxonomy; a
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
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lab_hooks.errors import InputError
from lab_hooks.taxonomy.documents import DEFAULT_DOCUMENT_HOSTS, glob_regex, in_repo_folder, local_document_dir, url_problem

CHUNK_TOKENS = 500
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # larger files in a commit's tree are not fetched or written out
MAX_FETCH_BYTES = 256 * 1024 * 1024  # the pack one document fetch may write
MAX_CACHE_BYTES = 2 * 1024 ** 3  # fetched and exported documents kept under LAB_HOME/documents
CACHE_GRACE_SECONDS = 3600  # an entry used this recently is not pruned (a run may be reading it)
FETCH_TIMEOUT = 300
TOO_LARGE = "too-large.json"  # beside a fetched tree: the paths over MAX_DOCUMENT_BYTES, not fetched
# Environment variables git may keep: locale, proxies, and where the system's CA certificates are.
_GIT_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO",
                 "http_proxy", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")
_OVER_CAP = "the fetch is over its {cap:,}-byte cap"
# Why a fetch failed, from git's stderr: (pattern, what the report says). The server's own words never go out.
_FETCH_FAILURES = (
    (r"returned error: 30[0-9]", "the server answered with a redirect (redirects are not followed)"),
    (r"returned error: 40[13]|could not read (Username|Password)|Authentication failed",
     "the repository needs credentials (only public repositories are fetched)"),
    (r"returned error: 404|repository .* not found|does not appear to be a git repository", "no repository at that URL"),
    (r"not our ref|couldn't find remote ref|no such remote ref|unadvertised object", "that commit is not in the repository"),
    (r"File too large|signal 25", _OVER_CAP),
    (r"Could not resolve host", "the host name does not resolve"),
    (r"SSL|certificate", "the host's TLS certificate was not accepted"),
    (r"Failed to connect|Connection refused|timed out|Operation too slow", "the host could not be reached"),
)
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


def _git(scheme: str, home: Path) -> tuple[list[str], dict]:
    """The git command prefix and environment for fetching untrusted URLs: one protocol, no
    redirects, no credentials (no helper, prompt, user/system config or token), no hooks."""
    options = {"protocol.allow": "never", f"protocol.{scheme}.allow": "always", "http.followRedirects": "false",
               "credential.helper": "", "core.askPass": "", "core.hooksPath": os.devnull, "http.sslVerify": "true",
               "fetch.unpackLimit": "1", "transfer.unpackLimit": "1",  # one pack file: the size cap holds it
               "http.lowSpeedLimit": "1024", "http.lowSpeedTime": "60", "init.defaultBranch": "main"}
    command = ["git"] + [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]
    env = {k: v for k, v in os.environ.items() if k in _GIT_ENV_KEEP}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_ASKPASS="false", SSH_ASKPASS="false")
    return command, env


def _capped(command: list[str], limit: int) -> list[str]:
    """`command` run with no file it writes allowed over `limit` bytes (RLIMIT_FSIZE, set in a
    small exec wrapper: a preexec_fn is unsafe while generation threads run)."""
    wrapper = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
               "os.execvp(sys.argv[2], sys.argv[2:])")
    return [sys.executable, "-c", wrapper, str(limit), *command]


def _fetch_failure(repo: str, commit: str, stderr: str, code: int) -> DocumentError:
    reason = next((why for pattern, why in _FETCH_FAILURES if re.search(pattern, stderr, re.I)),
                  f"git failed (exit {code})")
    if code == -25:  # SIGXFSZ: the pack passed the cap
        reason = _OVER_CAP
    return DocumentError(f"cannot fetch {repo} at {commit[:12]}: {reason.format(cap=MAX_FETCH_BYTES)}")


def _clone(repo: str, commit: str, cache: Path, hosts) -> Path:
    """The regular files of `repo` at `commit` (a folder in the cache), fetched as the module says."""
    scheme = "file" if repo.startswith("file://") else "https"
    problem = None if scheme == "file" else url_problem(repo, hosts)
    if problem:
        raise DocumentError(f"document.repo {repo!r} {problem}")
    if not re.fullmatch(r"[0-9a-f]{40}", commit or ""):
        raise DocumentError(f"document.commit {commit!r} is not a full 40-hex commit sha")
    dest = cache / f"fetch-{hashlib.sha256(repo.encode()).hexdigest()[:16]}-{commit}"
    if (dest / "tree").is_dir():
        os.utime(dest)
        return dest / "tree"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".clone-"))
    git, env = _git(scheme, tmp)
    gitdir = ["--git-dir", str(tmp / "git")]
    try:
        steps = [git + ["init", "--quiet", "--bare", str(tmp / "git")],
                 _capped(git + gitdir + ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth", "1",
                                         f"--filter=blob:limit={MAX_DOCUMENT_BYTES}", "--", repo, commit],
                         MAX_FETCH_BYTES)]
        for command in steps:
            try:
                proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=FETCH_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise DocumentError(f"cannot fetch {repo} at {commit[:12]}: timed out after {FETCH_TIMEOUT} s") from None
            if proc.returncode:
                raise _fetch_failure(repo, commit, proc.stderr, proc.returncode)
        # Reading the objects asks no server again: a file left out by the filter stays out.
        if not _write_tree(["git", "-c", "protocol.allow=never", *gitdir], env, commit, tmp / "entry"):
            raise DocumentError(f"cannot fetch {repo} at {commit[:12]}: {_OVER_CAP.format(cap=MAX_FETCH_BYTES)} "
                                "(unpacked)")
        _install(tmp / "entry", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(cache, keep=dest)
    return dest / "tree"


def _write_tree(git: list[str], env: dict, commit: str, entry: Path) -> bool:
    """The commit's regular files that were fetched into `entry/tree`, the others' paths in
    `entry/too-large.json`; False, writing nothing, when they unpack to over MAX_FETCH_BYTES
    (a small pack of many well-compressed files must not fill the disk)."""
    def run(*args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(git + list(args), input=stdin, capture_output=True, env=env, check=True,
                              timeout=FETCH_TIMEOUT).stdout

    listing = run("ls-tree", "-r", "-z", "--full-tree", commit).split(b"\0")
    missing = {line[1:41].decode() for line in run("rev-list", "--objects", "--missing=print", commit).splitlines()
               if line.startswith(b"?")}
    files, too_large = [], []
    for item in filter(None, listing):
        meta, _, path = item.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        name = path.decode("utf-8", "replace")
        if kind != "blob" or mode not in ("100644", "100755") or ".." in name.split("/"):
            continue  # links, submodules
        (too_large if oid in missing else files).append((oid, name))
    wanted = "".join(f"{oid}\n" for oid, _ in files).encode()
    if sum(map(int, run("cat-file", "--batch-check=%(objectsize)", stdin=wanted).split())) > MAX_FETCH_BYTES:
        return False
    (entry / "tree").mkdir(parents=True)
    (entry / TOO_LARGE).write_text(json.dumps(sorted(n for _, n in too_large)), encoding="utf-8")
    if not files:
        return True
    out = run("cat-file", "--batch", stdin=wanted)
    pos = 0
    for _, name in files:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        target = entry / "tree" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out[header_end + 1: header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return True


def _prune(cache: Path, keep: Path) -> None:
    """Keep the cache under MAX_CACHE_BYTES: drop the least recently used entries (never `keep`
    or one used in the last CACHE_GRACE_SECONDS), and temp folders a killed run left a day ago."""
    now = time.time()
    entries = []
    for path in cache.iterdir():
        age = now - path.lstat().st_mtime
        if path.name.startswith(".") and age > 86_400:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_dir() and not path.name.startswith("."):
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
            entries.append((path.stat().st_mtime, size, path))
    total = sum(size for _, size, _ in entries)
    for mtime, size, path in sorted(entries):
        if total <= MAX_CACHE_BYTES:
            break
        if path != keep and now - mtime > CACHE_GRACE_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
            total -= size


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
        os.utime(dest)
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
    _prune(cache, keep=dest)
    return dest


def document_root(document: dict, leaf_dir: Path, taxonomy_root: Path | None, cache: Path,
                  tree: GitTree | None = None, hosts=None) -> Path:
    """The directory `document.patterns` are relative to, fetching the repo if needed.

    A URL is fetched at `document.commit` from an allowed host (`hosts`, else the
    `document_hosts` of the taxonomy at `taxonomy_root`, else the default list);
    any other `repo` is a folder inside the taxonomy: in the checkout under
    `taxonomy_root`, or, with `tree`, in that commit's tree (`leaf_dir` is then the
    leaf's folder relative to the taxonomy). `file://` URLs are fetched only where
    LAB_HOOKS_ALLOW_FILE_REPOS=1 (local mirrors).
    """
    repo = str(document.get("repo") or "")
    patterns = document.get("patterns")
    if not repo:
        return leaf_dir if tree is None else _export(tree, Path(leaf_dir).as_posix(), patterns, cache)
    if repo.startswith("-") or "::" in repo:
        raise DocumentError(f"document.repo {repo!r} is not a URL or a path")
    if re.match(r"https?://", repo) or (repo.startswith("file://") and os.environ.get("LAB_HOOKS_ALLOW_FILE_REPOS") == "1"):
        return _clone(repo, str(document.get("commit", "")), cache, _hosts(hosts, taxonomy_root))
    if "://" in repo or repo.startswith("git@"):
        raise DocumentError(f"document.repo {repo!r}: only https:// repositories are fetched")
    folder = in_repo_folder(repo)
    if folder is not None and tree is not None:
        return _export(tree, folder, patterns, cache)
    local = local_document_dir(repo, taxonomy_root or leaf_dir)
    if local is None:
        raise DocumentError(f"document.repo {repo!r} is neither an https URL nor a folder inside the taxonomy")
    return local


def _hosts(hosts, taxonomy_root: Path | None) -> tuple[str, ...]:
    if hosts is not None:
        return tuple(hosts)
    if taxonomy_root is None:
        return DEFAULT_DOCUMENT_HOSTS
    from lab_hooks.checks.config import ConfigError, load_document_hosts

    try:
        return load_document_hosts(taxonomy_root)
    except ConfigError as exc:
        raise DocumentError(str(exc)) from None


def read_documents(document: dict, root: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, markdown text) of each matched file in name order, and the names skipped
    (not markdown, or over MAX_DOCUMENT_BYTES and so never fetched)."""
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
    too_large = _too_large(root, patterns)
    if not found:
        hint = f" (over {MAX_DOCUMENT_BYTES // 2**20} MiB, not fetched: {', '.join(too_large)})" if too_large else ""
        raise DocumentError(f"document.patterns {patterns} match no file{hint}")
    docs, skipped = [], []
    for name in sorted(found):
        if found[name].suffix.lower() in MARKDOWN:
            docs.append((name, found[name].read_text(encoding="utf-8", errors="replace")))
        else:
            skipped.append(name)
    skipped += too_large
    if not docs:
        raise DocumentError(f"no markdown among the matched files ({', '.join(skipped)}); PDF is not read")
    return docs, skipped


def _too_large(root: Path, patterns: list) -> list[str]:
    """The paths a fetch left out for their size that `patterns` match."""
    listing = root.parent / TOO_LARGE
    if root.name != "tree" or not listing.is_file():
        return []
    regexes = [glob_regex(str(p)) for p in patterns]
    return [name for name in json.loads(listing.read_text(encoding="utf-8")) if any(r.match(name) for r in regexes)]


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
