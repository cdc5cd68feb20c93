"""`lab-hooks diff` on real git repositories made in temp dirs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lab_hooks.checks.gitbase import GitBase, read_base
from lab_hooks.diff import DiffError, diff_taxonomy, leaf_from_blobs
from lab_hooks.diff.cli import main as diff_main
from lab_hooks.taxonomy.load import LeafError
from pr_repos import GIT_ENV, commit, git, write


def skill(question: str, n: int = 5) -> str:
    seeds = "".join(f"  - question: {question} number {i}?\n    answer: Answer {i} about {question}.\n"
                    for i in range(n))
    return f"version: 3\ncreated_by: tester\ntask_description: {question}\nseed_examples:\n{seeds}"


KNOWLEDGE = """version: 3
created_by: tester
domain: astronomy
document_outline: Moons
document:
  repo: docs
  commit: ""
  patterns:
    - "moons/*.md"
seed_examples:
  - context: The moon.
    questions_and_answers:
      - question: What?
        answer: That.
"""


@pytest.fixture
def repo(tmp_path):
    """main: four skills and a knowledge leaf with an in-repo document; `pr` forks from it."""
    repo = tmp_path / "taxo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {
        "compositional_skills/writing/poems/qna.yaml": skill("poems"),
        "compositional_skills/writing/poems/attribution.txt": "Title: poems\n",
        "compositional_skills/writing/jokes/qna.yaml": skill("jokes"),
        "compositional_skills/math/sums/qna.yaml": skill("sums"),
        "compositional_skills/math/products/qna.yaml": skill("products", 12),
        "foundational_skills/reasoning/logic/qna.yaml": skill("logic"),
        "knowledge/science/moons/qna.yaml": KNOWLEDGE,
        "docs/moons/luna.md": "# Luna\n",
        "docs/other.md": "unrelated\n",
        "README.md": "taxonomy\n",
    }, "main")
    git(repo, "checkout", "-qb", "pr")
    return repo


def by_path(diff):
    return {c.path: c for c in diff.leaves}


def test_pr_changes_with_merge_base_semantics(repo):
    commit(repo, {
        "compositional_skills/writing/limericks/qna.yaml": skill("limericks"),            # added
        "compositional_skills/writing/jokes/qna.yaml": skill("better jokes"),              # modified
        "foundational_skills/reasoning/logic/qna.yaml": None,                              # deleted
        "compositional_skills/math/sums/qna.yaml": None,                                   # renamed, same blob
        "compositional_skills/math/addition/qna.yaml": skill("sums"),
        "compositional_skills/math/products/qna.yaml": None,                               # renamed + edited
        "compositional_skills/math/multiplication/qna.yml": skill("products", 12).replace("number 3", "nr 3"),
        "compositional_skills/writing/poems/attribution.txt": "Title: poems, 2nd ed.\n",   # attribution only
        "docs/moons/luna.md": "# Luna\nMore.\n",                                           # knowledge document
        "docs/other.md": "changed, but nobody's document\n",
    })
    git(repo, "checkout", "-q", "main")  # main moves on after the fork: none of this is the PR's
    commit(repo, {"compositional_skills/writing/haiku/qna.yaml": skill("haiku"),
                  "compositional_skills/writing/jokes/qna.yaml": skill("main's jokes")})
    diff = diff_taxonomy(repo, "main", "pr")
    got = {p: (c.status, c.old_path, c.reasons) for p, c in by_path(diff).items()}
    poems = "compositional_skills/writing/poems/"
    assert got == {
        "compositional_skills/writing/limericks/qna.yaml": ("added", None, ("compositional_skills/writing/limericks/qna.yaml",)),
        "compositional_skills/writing/jokes/qna.yaml": ("modified", "compositional_skills/writing/jokes/qna.yaml",
                                                        ("compositional_skills/writing/jokes/qna.yaml",)),
        "foundational_skills/reasoning/logic/qna.yaml": ("deleted", "foundational_skills/reasoning/logic/qna.yaml",
                                                         ("foundational_skills/reasoning/logic/qna.yaml",)),
        "compositional_skills/math/addition/qna.yaml": ("renamed", "compositional_skills/math/sums/qna.yaml",
                                                        ("compositional_skills/math/addition/qna.yaml",)),
        "compositional_skills/math/multiplication/qna.yml": ("renamed", "compositional_skills/math/products/qna.yaml",
                                                             ("compositional_skills/math/multiplication/qna.yml",)),
        poems + "qna.yaml": ("modified", poems + "qna.yaml", (poems + "attribution.txt",)),
        "knowledge/science/moons/qna.yaml": ("modified", "knowledge/science/moons/qna.yaml", ("docs/moons/luna.md",)),
    }
    changes = by_path(diff)
    jokes = changes["compositional_skills/writing/jokes/qna.yaml"]
    assert jokes.blob_sha == git(repo, "rev-parse", "pr:compositional_skills/writing/jokes/qna.yaml")
    assert jokes.old_blob_sha == git(repo, "rev-parse", "pr~1:compositional_skills/writing/jokes/qna.yaml")
    assert changes[poems + "qna.yaml"].blob_sha == changes[poems + "qna.yaml"].old_blob_sha
    assert changes["knowledge/science/moons/qna.yaml"].kind.value == "knowledge"
    assert jokes.name == "compositional_skills/writing/jokes"


def test_head_leaves_come_from_blobs_not_the_checkout(repo):
    commit(repo, {"compositional_skills/writing/jokes/qna.yaml": skill("pr jokes"),
                  "compositional_skills/writing/poems/attribution.txt": "Title: new\n"})
    git(repo, "checkout", "-q", "main")
    write(repo, {"compositional_skills/writing/jokes/qna.yaml": "not: what the PR says\n"})
    before = (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD"))
    diff = diff_taxonomy(repo, "main", "pr")
    leaves = {c.path: diff.read(c) for c in diff.leaves}
    assert (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")) == before  # nothing checked out
    jokes = leaves["compositional_skills/writing/jokes/qna.yaml"]
    assert jokes.task_description == "pr jokes" and jokes.examples[0].pos == (5, 15)
    assert leaves["compositional_skills/writing/poems/qna.yaml"].attribution == "Title: new\n"
    (repo / "huge").write_bytes(b"x" * 1_000_001)
    sha = git(repo, "hash-object", "-w", "huge")
    with pytest.raises(LeafError, match="over the 1,000,000-byte limit"):
        leaf_from_blobs(diff.repo, "compositional_skills/x/qna.yaml", sha)


def test_working_tree_staged_unstaged_untracked(repo):
    git(repo, "checkout", "-q", "main")
    (repo / ".gitignore").write_text("scratch/\n")
    write(repo, {
        "compositional_skills/writing/jokes/qna.yaml": skill("unstaged jokes"),
        "compositional_skills/math/sums/qna.yaml": skill("staged sums"),
        "compositional_skills/writing/new/qna.yaml": skill("untracked"),
        "scratch/compositional_skills/x/qna.yaml": skill("ignored"),
    })
    git(repo, "add", "compositional_skills/math/sums/qna.yaml")
    (repo / "foundational_skills/reasoning/logic/qna.yaml").unlink()
    diff = diff_taxonomy(repo, "main")
    assert {p: c.status for p, c in by_path(diff).items()} == {
        "compositional_skills/writing/jokes/qna.yaml": "modified",
        "compositional_skills/math/sums/qna.yaml": "modified",
        "compositional_skills/writing/new/qna.yaml": "added",
        "foundational_skills/reasoning/logic/qna.yaml": "deleted",
    }
    new = by_path(diff)["compositional_skills/writing/new/qna.yaml"]
    assert diff.read(new).task_description == "untracked"
    assert new.blob_sha == git(repo, "hash-object", "compositional_skills/writing/new/qna.yaml")


def test_symlinks_and_submodules_are_reported_and_skipped(repo, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    commit(sub, {"x": "x"})
    (repo / "compositional_skills/writing/evil").mkdir(parents=True)
    os.symlink("/etc/passwd", repo / "compositional_skills/writing/evil/qna.yaml")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "knowledge/vendored")
    commit(repo, {"compositional_skills/writing/ok/qna.yaml": skill("ok")})
    for head in ("pr", None):
        diff = diff_taxonomy(repo, "main", head)
        assert [c.path for c in diff.leaves] == ["compositional_skills/writing/ok/qna.yaml"]
        assert {(s.path, s.reason) for s in diff.skipped} == {
            ("compositional_skills/writing/evil/qna.yaml", "symlink inside the taxonomy: not read"),
            ("knowledge/vendored", "submodule inside the taxonomy: not read"),
        }


def test_the_hook_pairs_renames_as_the_changeset_does(repo, monkeypatch):
    """Two leaves moved and edited, one new: `validate --base` (checks.gitbase) and ChangeSet
    pair each new leaf with the same old one (one policy: lab_hooks.taxonomy.renames)."""
    verse, humor, new = (f"compositional_skills/writing/{n}/qna.yaml" for n in ("verse", "humor", "new"))
    write(repo, {"compositional_skills/writing/poems/qna.yaml": None, "compositional_skills/writing/jokes/qna.yaml": None,
                 verse: skill("poems").replace("number 1", "nr 1"), humor: skill("jokes").replace("number 2", "nr 2"),
                 new: skill("something else entirely")})
    from_changeset = {c.path: c.old_path for c in diff_taxonomy(repo, "main").leaves if c.status == "renamed"}
    monkeypatch.chdir(repo)
    view = read_base(GitBase("main"), {f: ((repo / f).read_bytes(), None) for f in (verse, humor, new)}, ".")
    from_hook = {f: leaf.old_file for f, leaf in view.items() if leaf.status == "renamed"}
    assert from_hook == from_changeset == {verse: "compositional_skills/writing/poems/qna.yaml",
                                           humor: "compositional_skills/writing/jokes/qna.yaml"}
    assert view[new].status == "added"


def test_the_hook_finds_and_classifies_the_working_tree_s_leaves_as_the_changeset_does(repo, monkeypatch):
    """One policy (lab_hooks.diff.classify): the leaves `validate --base` checks and what each
    was at the base are the ChangeSet's, for every case a working tree can hold."""
    from lab_hooks.checks.gitbase import changed_leaf_files

    poems, jokes, sums = (f"compositional_skills/{n}/qna.yaml" for n in ("writing/poems", "writing/jokes", "math/sums"))
    added, moved = "compositional_skills/writing/limericks/qna.yaml", "compositional_skills/math/addition/qna.yaml"
    write(repo, {poems: skill("poems v2"),  # modified
                 "compositional_skills/writing/jokes/attribution.txt": "Title: jokes\n",  # only its attribution
                 sums: None, moved: skill("sums").replace("number 1", "nr 1"),  # renamed and edited
                 added: skill("limericks"),  # new
                 "foundational_skills/reasoning/logic/qna.yaml": None})  # deleted
    (repo / "compositional_skills/writing/evil").mkdir()
    (repo / "compositional_skills/writing/evil/qna.yaml").symlink_to("/etc/passwd")  # never read, always checked
    changes = diff_taxonomy(repo, "main")
    expected = {c.path: (c.status, c.old_path) for c in changes.present}
    assert set(expected) == {poems, jokes, moved, added}
    monkeypatch.chdir(repo)
    with GitBase("main") as base:
        files = changed_leaf_files(base, ".")
        assert files == sorted([*expected, *(s.path for s in changes.skipped_leaves)])
        view = read_base(base, {f: ((repo / f).read_bytes(), None) for f in expected}, ".")
    assert {f: (leaf.status, None if leaf.status == "added" else leaf.old_file) for f, leaf in view.items()} == expected


def test_taxonomy_in_a_subfolder(repo):
    commit(repo, {"taxonomy/compositional_skills/a/qna.yaml": skill("a"),
                  "compositional_skills/writing/jokes/qna.yaml": skill("jokes v2")})
    assert [c.path for c in diff_taxonomy(repo, "main", "pr", root="taxonomy").leaves] == [
        "taxonomy/compositional_skills/a/qna.yaml"]


def test_shallow_clone_without_merge_base_names_the_fix(repo, tmp_path, capsys):
    commit(repo, {"compositional_skills/writing/jokes/qna.yaml": skill("pr")})
    git(repo, "checkout", "-q", "main")
    commit(repo, {"README.md": "moved on\n"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{repo}", str(clone)],
                   check=True, env={**os.environ, **GIT_ENV})
    git(clone, "checkout", "-q", "pr")
    with pytest.raises(DiffError, match="fetch-depth: 0"):
        diff_taxonomy(clone, "origin/main", "HEAD")
    assert diff_main(["--repo", str(clone), "--base", "origin/main"]) == 1
    err = capsys.readouterr().err
    assert "shallow clone" in err and "git fetch --deepen" in err and err.count("\n") == 1
    git(clone, "fetch", "-q", "--unshallow")
    assert [c.status for c in diff_taxonomy(clone, "origin/main", "HEAD").leaves] == ["modified"]


def test_cli_text_json_and_errors(repo, capsys):
    commit(repo, {"compositional_skills/writing/jokes/qna.yaml": skill("jokes 2"),
                  "compositional_skills/writing/poems/attribution.txt": "Title: x\n"})
    assert diff_main(["--repo", str(repo), "--base", "main", "--head", "pr"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("M  compositional_skills/writing/jokes/qna.yaml  ")
    assert out[1].endswith("(via compositional_skills/writing/poems/attribution.txt)")
    assert out[2].startswith("2 modified: ")
    assert diff_main(["--repo", str(repo), "--base", "main", "--head", "pr", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(c["status"], c["kind"], c["name"]) for c in data["leaves"]] == [
        ("modified", "compositional_skills", "compositional_skills/writing/jokes"),
        ("modified", "compositional_skills", "compositional_skills/writing/poems")]
    assert data["merge_base"] == git(repo, "rev-parse", "main")
    assert diff_main(["--repo", str(repo), "--base", "nope"]) == 1
    assert "base ref 'nope' is not a commit" in capsys.readouterr().err
    assert diff_main(["--repo", str(repo.parent), "--base", "main"]) == 1
    assert "not inside a git repository" in capsys.readouterr().err
    assert diff_main([]) == 2


def test_hostile_head_content_is_bounded(repo, tmp_path):
    commit(repo, {"compositional_skills/writing/jokes/qna.yaml": None,
                  "compositional_skills/writing/huge/qna.yaml": "a: " + "x" * 2_000_000 + "\n"})
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    diff = diff_taxonomy(bare, "main", "pr")  # a bare repository: objects only
    assert {c.path: c.status for c in diff.leaves} == {
        "compositional_skills/writing/huge/qna.yaml": "added", "compositional_skills/writing/jokes/qna.yaml": "deleted"}
    with pytest.raises(LeafError, match="over the 1,000,000-byte limit"):
        diff.read(next(c for c in diff.leaves if c.status == "added"))
    with pytest.raises(DiffError, match="bare repository has no working tree; pass --head"):
        diff_taxonomy(bare, "main")


def test_validate_base_checks_exactly_the_changed_leaves(repo, monkeypatch, capsys):
    from lab_hooks.checks.validate import main as validate_main

    git(repo, "checkout", "-q", "main")
    commit(repo, {"compositional_skills/writing/old_broken/qna.yaml": "version: 3\n"})  # main's own problem
    git(repo, "checkout", "-q", "-b", "pr2")
    commit(repo, {"compositional_skills/writing/new_broken/qna.yaml": "version: 3\n"})
    write(repo, {"compositional_skills/writing/untracked/qna.yaml": "version: 3\n"})
    monkeypatch.chdir(repo / "compositional_skills")  # anywhere inside the repository
    assert validate_main(["--base", "main", "--format", "json"]) == 1
    files = json.loads(capsys.readouterr().out)["files"]
    assert {Path(f["file"]).parent.name for f in files} == {"new_broken", "untracked"}
    assert all(f["findings"] for f in files)
    assert {f["file"] for f in files} == {"writing/new_broken/qna.yaml", "writing/untracked/qna.yaml"}
    monkeypatch.chdir(repo)  # where Actions and pre-commit run: annotations need repo-relative paths
    named = "compositional_skills/writing/new_broken/qna.yaml"
    assert validate_main([named, "--base", "main", "--format", "github"]) == 1  # the files named, only
    out = capsys.readouterr().out
    files = {line.split("file=")[1].split(",")[0] for line in out.splitlines()}
    assert files == {named}, out
    assert validate_main([named, "--format", "github"]) == 1
    assert capsys.readouterr().out == out  # a leaf added since the base: every finding is new
    assert validate_main(["--base", "no-such-ref"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks validate: base ref 'no-such-ref' is not a commit") and err.count("\n") == 1


def test_cli_warns_when_the_taxonomy_is_not_at_the_root(repo, capsys):
    commit(repo, {"taxonomy/compositional_skills/a/qna.yaml": skill("a")})
    git(repo, "rm", "-rq", "compositional_skills", "knowledge", "foundational_skills")
    assert diff_main(["--repo", str(repo), "--base", "main"]) == 0
    assert "pass --root with the taxonomy's folder" in capsys.readouterr().err
    assert diff_main(["--repo", str(repo), "--base", "main", "--root", "taxonomy"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("A  taxonomy/compositional_skills/a/qna.yaml") and not captured.err
