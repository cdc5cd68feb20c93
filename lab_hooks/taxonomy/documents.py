"""Where a knowledge leaf's documents may come from.

A `document.repo` URL is fetched only from an allowed host (`url_problem`: https,
no credentials, a host on the taxonomy's `document_hosts`, by default well-known
public git hosts); the validator and the fetch apply the same rule. Or it names a
folder of the taxonomy repo (our offline extension, `.` for its root): one rule
says which (`in_repo_folder`); the validator, the diff and generation all go
through it, whether they read the checkout (`local_document_dir`) or a commit's tree.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

HEAD = "HEAD"  # an in-repo document is read at the same commit as its leaf
# Where documents are fetched from unless `.lab-hooks.yaml` lists `document_hosts` (exact host names).
DEFAULT_DOCUMENT_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org", "git.sr.ht", "huggingface.co")
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")  # RFC 3986: no space, backslash or control
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")


def url_problem(url: str, hosts: Iterable[str] = DEFAULT_DOCUMENT_HOSTS) -> str | None:
    """Why documents may not be fetched from `url` (None: they may).

    https only, no user or password, query or fragment, and a host that `hosts`
    lists exactly. An IP address, a name without a dot (`localhost`, `metadata`)
    or a local name is refused unless that very host is listed.
    """
    if not _URL_CHARS.fullmatch(url):
        return "is not a plain URL (spaces, backslashes or control characters)"
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError for a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() != "https":
        return "is not https:// (documents are fetched over https only)"
    if "@" in parts.netloc:
        return "carries a user name or password"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "names no host"
    allowed = sorted({h.lower().rstrip(".") for h in hosts})
    if host in allowed:
        return None
    kind = _address_kind(host)
    if kind:
        return f"host {host} is {kind}; documents come only from the allowed public git hosts"
    return (f"host {host} is not an allowed document host ({', '.join(allowed) or 'none'}); "
            "a maintainer can add it to `document_hosts` in .lab-hooks.yaml")


def _address_kind(host: str) -> str | None:
    """What a non-public host is (`a private address`, `a local name`, ...), or None for a public name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        for attr, kind in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
                           ("is_private", "a private address"), ("is_reserved", "a reserved address")):
            if getattr(address, attr):
                return kind
        return "an IP address (name the host)"
    if all(re.fullmatch(r"0x[0-9a-f]*|[0-9]+", label) for label in host.split(".")):
        return "an IP address (name the host)"  # 2130706433, 0x7f.1, 127.1: what curl reads as addresses
    if "." not in host or host.endswith(_LOCAL_SUFFIXES):
        return "a local name"
    return None


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
