"""Fetching a knowledge leaf's documents over the network, fenced (issue 15, item 2): a real git
smart-HTTP server over TLS on 127.0.0.1 (allowed only here, through `hosts` or the taxonomy's
config), a redirect to an internal-looking target that must never be reached, a server asking
for credentials that must never get any, a size cap, and a bounded cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from git_https_server import GitHttpsServer, PlainServer, self_signed_cert

from lab_hooks.sdg import documents
from lab_hooks.sdg.documents import DocumentError, document_root, read_documents

LOCAL = ["127.0.0.1"]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, env=env,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def served(tmp_path, certs, monkeypatch):
    """docs.git on the server: an old commit with a 2 MiB file, then guide.md, a 200 KiB huge.md,
    a link out of the repo; blobs over 64 KiB are left out of fetches in these tests."""
    monkeypatch.setenv("GIT_SSL_CAINFO", str(certs[1]))  # the only thing the test's git trusts extra
    monkeypatch.setattr(documents, "MAX_DOCUMENT_BYTES", 64 * 1024)
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "old.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    git(work, "add", ".")
    git(work, "commit", "-qm", "old")
    (work / "old.bin").unlink()
    (work / "guide.md").write_text("# Guide\nTardigrades survive boiling.\n")
    (work / "huge.md").write_text("# Huge\n" + "x" * 200_000)
    (work / "link.md").symlink_to("/etc/hostname")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "docs")
    commit = git(work, "rev-parse", "HEAD")
    root = tmp_path / "srv"
    root.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "docs.git"))
    git(root / "docs.git", "config", "uploadpack.allowFilter", "true")
    git(root / "docs.git", "config", "uploadpack.allowAnySHA1InWant", "true")
    return root, commit


def doc(url: str, commit: str, patterns=("*.md",)) -> dict:
    return {"repo": url, "commit": commit, "patterns": list(patterns)}


def test_a_fetch_is_shallow_blob_limited_and_keeps_only_regular_files(served, certs, tmp_path):
    root, commit = served
    with GitHttpsServer(root, certs) as server:
        tree = document_root(doc(f"{server.url}/docs.git", commit), tmp_path, None, tmp_path / "cache", hosts=LOCAL)
    docs, skipped = read_documents(doc("", "", ["*.md"]), tree)
    assert docs == [("guide.md", "# Guide\nTardigrades survive boiling.\n")] and skipped == ["huge.md"]
    assert sorted(p.name for p in tree.iterdir()) == ["guide.md"]  # no link, no .git, no huge.md
    assert server.bytes_sent < 100_000  # neither the 2 MiB file in history nor the 200 KiB one came
    assert not any("authorization" in {k.lower() for k in r["headers"]} for r in server.requests)


def test_the_taxonomy_config_allows_the_host(served, certs, tmp_path):
    root, commit = served
    taxonomy = tmp_path / "taxonomy"
    taxonomy.mkdir()
    with GitHttpsServer(root, certs) as server:
        document = doc(f"{server.url}/docs.git", commit)
        with pytest.raises(DocumentError, match="127.0.0.1 is a loopback address"):
            document_root(document, taxonomy, taxonomy, tmp_path / "cache")
        assert server.requests == []  # refused before any connection
        (taxonomy / ".lab-hooks.yaml").write_text("document_hosts: [127.0.0.1]\n")
        assert (document_root(document, taxonomy, taxonomy, tmp_path / "cache") / "guide.md").is_file()


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/docs.git", "https://u:p@127.0.0.1:{port}/docs.git",
                                 "https://127.0.0.1:{port}/docs.git?x=1", "https://localhost:{port}/docs.git"])
def test_urls_the_validator_refuses_are_never_fetched(served, certs, tmp_path, url):
    root, commit = served
    with GitHttpsServer(root, certs) as server:
        port = server.url.rsplit(":", 1)[1]
        with pytest.raises(DocumentError, match="document.repo"):
            document_root(doc(url.format(port=port), commit), tmp_path, None, tmp_path / "cache", hosts=LOCAL)
        assert server.requests == []


@pytest.mark.parametrize("to", ["{target}/latest/meta-data", "{self}/docs.git"])  # internal-looking; same host
def test_a_redirect_is_not_followed_and_its_target_not_named(served, certs, tmp_path, to):
    root, commit = served
    with PlainServer() as target, GitHttpsServer(root, certs) as server:
        server.redirects["/moved.git"] = to.format(target=target.url, self=server.url)
        with pytest.raises(DocumentError) as error:
            document_root(doc(f"{server.url}/moved.git", commit), tmp_path, None, tmp_path / "cache", hosts=LOCAL)
        assert target.requests == []
        assert [r["path"].split("?")[0] for r in server.requests] == ["/moved.git/info/refs"]  # nothing after it
    message = str(error.value)
    assert "redirect" in message and "meta-data" not in message and target.url.rsplit(":", 1)[1] not in message
    assert message.count(server.url) == 1  # the URL as the leaf wrote it, nothing the server said


def test_no_credentials_reach_a_server_that_asks(served, certs, tmp_path, monkeypatch):
    """A credential helper in the runner's config, a token in the environment: none of it is sent."""
    root, commit = served
    home = tmp_path / "home"
    home.mkdir()
    with GitHttpsServer(root, certs, require_auth=True) as server:
        (home / ".git-credentials").write_text(f"https://runner:s3cret@{server.url.split('//')[1]}\n")
        (home / ".gitconfig").write_text("[credential]\n\thelper = store\n[http]\n\textraheader = Authorization: bearer s3cret\n")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        monkeypatch.setenv("GITHUB_TOKEN", "s3cret")
        with pytest.raises(DocumentError, match="needs credentials"):
            document_root(doc(f"{server.url}/docs.git", commit), tmp_path, None, tmp_path / "cache", hosts=LOCAL)
    assert server.requests and not any("authorization" in {k.lower() for k in r["headers"]} for r in server.requests)


def test_a_fetch_over_the_size_cap_fails_and_leaves_nothing(served, certs, tmp_path, monkeypatch):
    root, _ = served
    work = tmp_path / "many"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for i in range(40):  # 40 incompressible files of 20 KiB: each under the blob limit, 800 KiB together
        (work / f"part{i}.md").write_bytes(os.urandom(20 * 1024))
    git(work, "add", ".")
    git(work, "commit", "-qm", "many")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "many.git"))
    git(root / "many.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setattr(documents, "MAX_FETCH_BYTES", 256 * 1024)
    with GitHttpsServer(root, certs) as server:
        with pytest.raises(DocumentError, match="the fetch is over its 262,144-byte cap"):
            document_root(doc(f"{server.url}/many.git", git(work, "rev-parse", "HEAD")), tmp_path, None,
                          tmp_path / "cache", hosts=LOCAL)
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_cache_keeps_to_its_size_least_recently_used_first(served, certs, tmp_path, monkeypatch):
    root, commit = served
    cache = tmp_path / "cache"
    cache.mkdir()
    old = cache / "fetch-old"
    (old / "tree").mkdir(parents=True)
    (old / "tree" / "a.md").write_bytes(b"x" * 50_000)
    os.utime(old, (1, 1))  # used long ago
    stale = cache / ".clone-killed"
    stale.mkdir()
    os.utime(stale, (1, 1))
    monkeypatch.setattr(documents, "MAX_CACHE_BYTES", 40_000)
    with GitHttpsServer(root, certs) as server:
        tree = document_root(doc(f"{server.url}/docs.git", commit), tmp_path, None, cache, hosts=LOCAL)
    assert tree.is_dir() and not old.exists() and not stale.exists()


def test_files_that_unpack_over_the_cap_are_refused(served, certs, tmp_path, monkeypatch):
    """A small pack of well-compressed files (each under the blob limit) must not fill the disk."""
    root, _ = served
    work = tmp_path / "bomb"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for i in range(30):
        (work / f"zeros{i}.md").write_text(f"# {i}\n" + "0" * 60_000)
    git(work, "add", ".")
    git(work, "commit", "-qm", "bomb")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "bomb.git"))
    git(root / "bomb.git", "config", "uploadpack.allowFilter", "true")
    monkeypatch.setattr(documents, "MAX_FETCH_BYTES", 1024 * 1024)  # the pack is far smaller; 1.8 MB unpacked
    with GitHttpsServer(root, certs) as server:
        with pytest.raises(DocumentError, match="over its 1,048,576-byte cap .unpacked."):
            document_root(doc(f"{server.url}/bomb.git", git(work, "rev-parse", "HEAD")), tmp_path, None,
                          tmp_path / "cache", hosts=LOCAL)
    assert list((tmp_path / "cache").iterdir()) == []
