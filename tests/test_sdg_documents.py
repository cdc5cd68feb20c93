"""Knowledge documents: pinned-commit fetch from a real git repo, safety, chunking."""

import subprocess
from pathlib import Path

import pytest

import git as gitpython

from lab_hooks.sdg.documents import DocumentError, GitTree, chunk_markdown, document_root, read_documents
from lab_hooks.taxonomy.documents import in_repo_folder


def words(text: str) -> int:
    return len(text.split())


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def doc_repo(tmp_path):
    repo = tmp_path / "docs-repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "guide.md").write_text("# Old\nold text\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "guide.md").write_text("# New\nnew text\n")
    (repo / "paper.pdf").write_bytes(b"%PDF-1.4")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "two")
    return repo, first


@pytest.fixture(autouse=True)
def allow_file_repos(monkeypatch):
    monkeypatch.setenv("LAB_HOOKS_ALLOW_FILE_REPOS", "1")


def test_fetch_reads_the_pinned_commit_not_the_tip(doc_repo, tmp_path):
    repo, first = doc_repo
    document = {"repo": f"file://{repo}", "commit": first, "patterns": ["*.md", "*.pdf"]}
    root = document_root(document, tmp_path, None, tmp_path / "cache")
    docs, skipped = read_documents(document, root)
    assert docs == [("guide.md", "# Old\nold text\n")] and skipped == []
    assert document_root(document, tmp_path, None, tmp_path / "cache") == root  # cached, no second clone


def test_pdf_only_is_an_error_naming_the_files(doc_repo, tmp_path):
    repo, _ = doc_repo
    head = git(repo, "rev-parse", "HEAD")
    document = {"repo": f"file://{repo}", "commit": head, "patterns": ["*.pdf"]}
    with pytest.raises(DocumentError, match="paper.pdf"):
        read_documents(document, document_root(document, tmp_path, None, tmp_path / "cache"))


@pytest.mark.parametrize("repo, commit, message", [
    ("ext::sh -c touch% /tmp/pwned", "a" * 40, "not a URL"),
    ("--upload-pack=touch /tmp/pwned", "a" * 40, "not a URL"),
    ("no/such/dir", "a" * 40, "neither"),
    ("../outside", "a" * 40, "neither"),
    ("ssh://host/repo", "a" * 40, "only https"),
])
def test_hostile_or_missing_repos(repo, commit, message, tmp_path):
    with pytest.raises(DocumentError, match=message):
        document_root({"repo": repo, "commit": commit, "patterns": ["*.md"]}, tmp_path, tmp_path, tmp_path / "c")


def test_unknown_commit(doc_repo, tmp_path):
    repo, _ = doc_repo
    with pytest.raises(DocumentError, match="cannot fetch"):
        document_root({"repo": f"file://{repo}", "commit": "0" * 40, "patterns": ["*.md"]}, tmp_path, None, tmp_path / "c")


def test_file_urls_need_the_opt_in(doc_repo, tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_HOOKS_ALLOW_FILE_REPOS")
    repo, first = doc_repo
    with pytest.raises(DocumentError, match="only https"):
        document_root({"repo": f"file://{repo}", "commit": first, "patterns": ["*.md"]}, tmp_path, None, tmp_path / "c")


def test_in_repo_folder(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\ntext")
    document = {"repo": "docs", "patterns": ["*.md"]}
    root = document_root(document, tmp_path / "knowledge" / "x", tmp_path, tmp_path / "c")
    assert read_documents(document, root) == ([("a.md", "# A\ntext")], [])


@pytest.fixture
def taxonomy_repo(tmp_path):
    """A taxonomy repo with in-repo documents, committed, then edited in the checkout only."""
    root = tmp_path / "taxonomy"
    (root / "documents").mkdir(parents=True)
    (root / "knowledge/x").mkdir(parents=True)
    (root / "documents/a.md").write_text("# A\ncommitted")
    (root / "documents/deep").mkdir()
    (root / "documents/deep/b.md").write_text("# B\ndeep")
    (root / "knowledge/x/notes.md").write_text("# Notes\ncommitted")
    (root / "documents/link.md").symlink_to(tmp_path / "secret.md")
    (tmp_path / "secret.md").write_text("outside the repo")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "docs")
    commit = git(root, "rev-parse", "HEAD")
    (root / "documents/a.md").write_text("# A\nuncommitted edit")  # must never be read for the commit
    (root / "knowledge/x/notes.md").write_text("# Notes\nuncommitted edit")
    return root, GitTree(gitpython.Repo(root), commit)


@pytest.mark.parametrize("repo, folder", [
    (".", "."), ("documents", "documents"), ("documents/", "documents"), ("./documents", "documents"),
    ("https://example.com/r", None), ("git@host:r", None), ("C:docs", None), ("/abs", None), ("~/d", None),
    ("../outside", None), ("documents/../..", None),
])
def test_one_rule_names_in_repo_folders(repo, folder):
    assert in_repo_folder(repo) == folder


def test_in_repo_documents_come_from_the_commit_not_the_checkout(taxonomy_repo, tmp_path):
    root, tree = taxonomy_repo
    document = {"repo": ".", "commit": "HEAD", "patterns": ["documents/*.md", "documents/**/*.md"]}
    at_commit = read_documents(document, document_root(document, Path("knowledge/x"), root, tmp_path / "c", tree))
    assert at_commit == ([("documents/a.md", "# A\ncommitted"), ("documents/deep/b.md", "# B\ndeep")], [])
    checkout = read_documents(document, document_root(document, root / "knowledge/x", root, tmp_path / "c"))
    assert ("documents/a.md", "# A\nuncommitted edit") in checkout[0]  # the checkout path reads the checkout
    assert ("documents/link.md", "outside the repo") not in checkout[0] + at_commit[0]

    beside = {"patterns": ["*.md"]}  # no document.repo: the files beside the leaf, also from the commit
    assert read_documents(beside, document_root(beside, Path("knowledge/x"), root, tmp_path / "c", tree)) == \
        ([("notes.md", "# Notes\ncommitted")], [])


def test_in_repo_folder_missing_at_the_commit(taxonomy_repo, tmp_path):
    root, tree = taxonomy_repo
    (root / "later").mkdir()  # in the checkout only
    with pytest.raises(DocumentError, match="'later' is not in commit"):
        document_root({"repo": "later", "patterns": ["*.md"]}, Path("knowledge/x"), root, tmp_path / "c", tree)


def test_patterns_cannot_escape_the_repo(tmp_path):
    (tmp_path / "secret.md").write_text("secret")
    leaf = tmp_path / "leaf"
    leaf.mkdir()
    with pytest.raises(DocumentError, match="match no file"):
        read_documents({"patterns": ["../secret.md"]}, leaf)


def test_chunks_end_at_headings_and_respect_the_limit():
    sections = [f"## Part {i}\n" + " ".join(f"w{i}_{j}" for j in range(30)) for i in range(6)]
    chunks = chunk_markdown("\n\n".join(sections), words, limit=70)
    assert all(words(c) <= 70 for c in chunks)
    assert all(c.startswith("## Part") for c in chunks)  # every chunk starts at a heading
    assert " ".join(chunks).split() == "\n\n".join(sections).split()  # nothing lost or reordered


def test_long_section_is_split_by_paragraph_then_words():
    text = "# One\n" + " ".join(f"x{i}" for i in range(250)) + "\n\n" + "short para"
    chunks = chunk_markdown(text, words, limit=100)
    assert all(words(c) <= 100 for c in chunks) and len(chunks) == 3
    assert " ".join(chunks).split() == text.split()


def test_headings_in_code_fences_do_not_split():
    text = "# Doc\n```\n# not a heading\n```\nend"
    assert chunk_markdown(text, words, limit=100) == [text]
