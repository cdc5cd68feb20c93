"""`lab-hooks generate` / `preview` as a user runs them, on the embedded model and a real git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lab_hooks.cli import main
from test_sdg_generate import KNOWLEDGE

pytestmark = pytest.mark.slow
TINY = ["--samples-per-seed", "1", "--max-tokens", "8", "--no-progress"]
LEAF = Path(__file__).resolve().parent.parent / "taxonomy/compositional_skills/writing/freeform/haiku/qna.yaml"


@pytest.fixture
def home(tmp_path, monkeypatch, embedded_model_dir):
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    # the converted checkpoint is reused, not converted again, under the test's LAB_HOME
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    (models / embedded_model_dir.name).symlink_to(embedded_model_dir)
    return tmp_path


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_generate_changed_leaves_then_rerun_from_cache(home, capsys):
    repo = home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("taxonomy\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@e.com", "-c", "user.name=t", "commit", "-qm", "base")
    leaf = repo / "compositional_skills/writing/freeform/haiku/qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_bytes(LEAF.read_bytes())
    git(repo, "checkout", "-qb", "pr")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@e.com", "-c", "user.name=t", "commit", "-qm", "add haiku")
    out = home / "out"
    args = ["generate", "--base", "main", "--head", "pr", "--taxonomy", str(repo), "--out", str(out), *TINY]
    code = main(args)
    first = capsys.readouterr().out
    assert code in (0, 1)
    assert "compositional_skills/writing/freeform/haiku" in first
    assert (out / "leaves/compositional_skills/writing/freeform/haiku/records.jsonl").exists()
    assert main(args + ["--format", "json"]) == code
    report = json.loads(capsys.readouterr().out)
    assert report["teacher_calls"] == 0 and report["leaves"][0]["status"] in ("ok", "empty")


def test_generate_head_reads_in_repo_documents_from_the_commit(home, capsys):
    repo = home / "repo"
    (repo / "documents").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("taxonomy\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@e.com", "-c", "user.name=t", "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "pr")
    leaf = repo / "knowledge/engineering/bridges/qna.yaml"
    leaf.parent.mkdir(parents=True)
    leaf.write_text(KNOWLEDGE.format(repo=".", commit="HEAD", pattern="documents/bridge.md"))
    (repo / "documents/bridge.md").write_text("# Harbour Bridge\n\nIts arch rises 134 metres above the water.\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@e.com", "-c", "user.name=t", "commit", "-qm", "add bridges")
    (repo / "documents/bridge.md").write_text("# Harbour Bridge\n\nUNCOMMITTED TEXT\n")  # never read for pr
    out = home / "out"
    code = main(["generate", "--base", "main", "--head", "pr", "--repo", str(repo), "--out", str(out), *TINY])
    assert code in (0, 1), capsys.readouterr().err
    stats = json.loads((out / "leaves/knowledge/engineering/bridges/stats.json").read_text())
    assert stats["documents"] == ["documents/bridge.md"] and stats["chunks"] == 1
    records = (out / "leaves/knowledge/engineering/bridges/records.jsonl").read_text()
    assert "134 metres" in records and "UNCOMMITTED" not in records


def test_generate_bad_leaf_is_one_line_with_position(home, capsys):
    bad = home / "compositional_skills/x/qna.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("version: 3\nseed_examples: [\n")
    assert main(["generate", "--leaf", str(bad), "--repo", str(home), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"lab-hooks generate: {bad}:") and "LH003" in err


def test_generate_unknown_ref_is_bad_input(home, capsys):
    assert main(["generate", "--base", "nope", "--repo", str(home), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks generate: ") and err.count("\n") == 1


def test_preview_prints_samples_and_verdicts(home, capsys):
    code = main(["preview", str(LEAF.parent), "--seeds", "1", "--max-tokens", "8", "--samples-per-seed", "1",
                 "--repo", str(LEAF.parents[4])])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "compositional_skills/writing/freeform/haiku" in out and "--- sample 0" in out
    assert "question_judge" in out


def test_gc_deletes_nothing_while_a_generate_runs(home, capsys, monkeypatch):
    from lab_hooks.sdg import generate
    from lab_hooks.store import Store, StoreBusy

    real, refused = generate.generate_leaves, []

    def generate_while_gc_tries(*args, **kwargs):
        try:
            Store().gc(keep_days=0)
        except StoreBusy as exc:
            refused.append(str(exc))
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "generate_leaves", generate_while_gc_tries)
    assert main(["generate", "--leaf", str(LEAF), "--out", str(home / "out"), *TINY]) in (0, 1)
    assert len(refused) == 1 and "a job (pr, promote, generate, train, eval) is using the store" in refused[0]
    Store().gc(keep_days=0)  # the job has ended: gc runs again
