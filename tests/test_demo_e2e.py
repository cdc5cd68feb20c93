"""`make demo`'s model path end to end, as CI runs it: the embedded model, an empty store.

One demo run (lab_hooks.demo.main: promote main from the sample taxonomy, then the PR
adding the limericks leaf) in a fresh LAB_HOME; the assertions are on its results.json
and comment.md. Then the planted effects the verdicts rest on, reduced (bench/planted.py
has the full benchmark): the same PR over-trained is reported as a regression of the
control it leaks into, and the same PR under another seed is within noise against the
demo's. These share the demo's store, so main is promoted once.
Measured wall time on 2 cores: docs/eval-results.md (*The CI test*).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

LIMERICKS = "compositional_skills/writing/freeform/limericks"
BENCH = Path(__file__).resolve().parents[1] / "bench" / "planted.py"


def planted():
    spec = importlib.util.spec_from_file_location("planted", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(module_tmp, embedded_model_dir):
    """One `make demo` from an empty store (the pinned assets and the converted model linked in)."""
    from lab_hooks import demo as demo_module
    from lab_hooks.home import lab_home

    warm = lab_home()
    home = module_tmp / "demo-home"
    home.mkdir()
    for name in ("assets", "models"):
        (home / name).symlink_to(warm / name)
    out = module_tmp / "demo-out"
    out.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("LAB_HOME", str(home))
    patch.delenv("LAB_STORE_URL", raising=False)  # the demo points it at its own store; undone below
    try:
        assert demo_module.main(["--out", str(out / "first")]) == 0
        assert demo_module.main(["--out", str(out / "first")]) == 0  # the rerun, from the store
        results = json.loads((out / "first" / "results.json").read_text())
        yield {"home": home, "out": out, "results": results,
               "comment": (out / "first" / "comment.md").read_text(encoding="utf-8")}
    finally:
        patch.undo()


def test_the_pr_leaf_improved_on_held_out_answers(demo):
    run = demo["results"]
    assert run["status"] == "ok", run.get("failure")
    [leaf] = [row for row in run["leaves"] if row["changed"]]
    nll = leaf["reference_nll"]
    assert leaf["path"] == LIMERICKS and nll["verdict"] == "improved", nll
    assert nll["held_out"] and nll["n_answers"] == 5  # measured on seeds generation never saw
    assert nll["ci"][1] < 0 and nll["beyond_controls"]["ci"][1] < 0  # both CIs exclude zero
    [gen] = run["generation"]["leaves"]
    assert sorted(gen["held_out_seeds"]) == sorted(a["seed"] for a in nll["answers"] if a["held_out"])


def test_replay_from_main_s_buffer_was_mixed_in_and_no_control_regressed(demo):
    run = demo["results"]
    controls = [row for row in run["leaves"] if not row["changed"]]
    assert len(controls) == 3
    assert not [row["path"] for row in controls if row["reference_nll"]["verdict"] == "regressed"]
    assert run["training"]["replay_samples"] > 0 and run["training"]["replay_buffer_leaves"] == 9


def test_the_judge_calibration_is_reported_and_its_verdicts_withheld(demo):
    run = demo["results"]
    calibration = run["judge"]["calibration"]
    assert calibration["n"] == 6 and calibration["passed"] is False  # the embedded 135M judge
    assert run["judge"]["scoring"] in ("logprob", "parsed")
    assert run["mtbench"]["overall"]["verdict"] == "not drawn"


def test_the_comment_leads_with_the_leaf_and_a_rerun_is_identical(demo):
    comment = demo["comment"]
    first = comment.split("### What the PR's leaves teach")[1].split("###")[0]
    assert f"| `{LIMERICKS}` (new) |" in first and "🟢 improved" in first
    assert "reaches 0.11 nats/token (the default, calibrated on null retrainings of the demo's PR" in first
    assert comment.index("### What the PR's leaves teach") < comment.index("### Regressions on control leaves") \
        < comment.index("### MT-Bench (judge failed calibration")
    stages = {s["name"]: s["status"] for s in demo["results"]["stages"]}
    assert stages["generate"] == stages["train"] == stages["evaluate"] == "cached"  # the rerun's


def test_an_overtrained_pr_is_reported_as_a_regression_of_the_control_it_leaks_into(demo, monkeypatch):
    """The demo PR at five times its learning rate labels the haiku's lines too."""
    monkeypatch.setenv("LAB_HOME", str(demo["home"]))
    bench = planted()
    rows = bench.run_case("harmful", [0], demo["out"] / "planted")
    [haiku] = [r for r in rows if r["leaf"] == bench.HAIKU]
    assert haiku["verdict"] == "regressed", haiku


def test_a_null_pr_is_within_noise_on_every_leaf(demo, monkeypatch):
    """The demo PR under seed 1 against itself under seed 0 (the demo's): only the seed
    differs, so every verdict but *within noise* would be false. The pair is one of the 66
    the minimum effects were taken from: this guards against the noise or the rule drifting;
    bench/planted.py measures the rate."""
    monkeypatch.setenv("LAB_HOME", str(demo["home"]))
    bench = planted()
    rows = [r for r in bench.run_case("null", [0, 1], demo["out"] / "planted") if r["case"] == "null"]
    assert {r["seed"] for r in rows} == {"0-1"} and any(r["changed"] for r in rows) and len(rows) >= 4
    assert [r for r in rows if r["verdict"] != "within noise"] == []
