"""The sticky comment: contents, escaping of untrusted text, GitHub's size limit."""

from __future__ import annotations

import copy
import re

import pytest
from markdown_it import MarkdownIt

from lab_hooks.report.comment import GITHUB_LIMIT, MARKER, render_comment
from lab_hooks.report.escape import log_safe, md_code, md_text
from lab_hooks.report.summary import annotations, set_outputs, write_step_summary

HOSTILE = ("Ping @org/team and @alice <img src=x onerror=alert(1)> <script>x</script> "
           "[click](https://evil.example/x) ![pixel](https://evil.example/p.png) www.evil.example "
           "**bold** `code` | pipe\n::set-output name=verdict::improved\n::add-mask::x &amp; <!-- -->")


HAIKU = "compositional_skills/writing/freeform/haiku"
IDIOMS = "compositional_skills/linguistics/freeform/idioms"
SHELL = "compositional_skills/coding/freeform/shell_one_liners"


def reference_row(path, changed, change, base, candidate, ci, beyond, beyond_ci, verdict, held_out=False) -> dict:
    return {"path": path, "changed": changed, "change": change, "reference_nll": {
        "base": base, "candidate": candidate, "delta": round(candidate - base, 4), "ci": ci, "verdict": verdict,
        "n_answers": 5, "held_out": held_out, "perplexity": {"base": 10.1, "candidate": 4.1},
        "beyond_controls": {"delta": beyond, "ci": beyond_ci, "controls_delta": -0.02, "controls": [IDIOMS]},
        "answers": [{"seed": 0, "held_out": held_out, "measured": True, "tokens": 40, "base": base,
                     "candidate": candidate}]}}


def full_run(**over) -> dict:
    cats = {c: {"base": 5.0 + i / 10, "candidate": 5.2 + i / 10, "delta": 0.2, "ci": [-0.1, 0.5],
                "verdict": "within noise"} for i, c in enumerate(["writing", "roleplay", "reasoning", "math"])}
    run = {
        "status": "ok", "version": "0.1.0", "repo": "acme/taxonomy", "pr": 7,
        "base": {"ref": "main", "sha": "a" * 40}, "head": {"ref": "pr-7", "sha": "b" * 40},
        "artifacts_url": "https://github.com/acme/taxonomy/actions/runs/42", "server_url": "https://github.com",
        "stages": [{"name": "diff", "seconds": 0.12, "status": "ok"}, {"name": "generate", "seconds": 61.0, "status": "ok"},
                   {"name": "train", "seconds": 120.5, "status": "cached"}],
        "changed_leaves": [{"path": "compositional_skills/writing/freeform/haiku/qna.yaml", "change": "added",
                            "kind": "compositional_skills", "blob_sha": "c" * 40}],
        "generation": {"teacher": "embedded:smollm2-135m-instruct", "leaves": [
            {"leaf": "compositional_skills/writing/freeform/haiku", "candidates": 40, "accepted": 12,
             "dropped": {"question_judge": 20, "response_judge": 8}, "status": "ok", "held_out_seeds": [0, 3],
             "examples": {"accepted": [{"question": "Write a haiku about rain.", "answer": "Drops fall"}],
                          "dropped": [{"question": "zxq?", "answer": "no", "dropped_by": "question_judge",
                                       "reason": "rejected"}]}}]},
        "training": {"method": "full", "replay_samples": 12, "replay_buffer_leaves": 3,
                     "phases": [{"phase": 2, "new_samples": 12, "replay_samples": 12, "replay_ratio": 1.0,
                                 "replay": {IDIOMS: 7, SHELL: 5}, "steps": 6, "loss_first": 2.5, "loss_last": 1.9}]},
        "leaves": [reference_row(HAIKU, True, "new", 2.31, 1.42, [-1.0, -0.8], -0.86, [-0.97, -0.75], "improved",
                                 held_out=True),
                   reference_row(IDIOMS, False, "unchanged", 1.9, 1.87, [-0.05, -0.01], 0.0, [-0.03, 0.03],
                                 "within noise"),
                   reference_row(SHELL, False, "unchanged", 1.5, 1.9, [0.3, 0.5], 0.43, [0.33, 0.52], "regressed")],
        "leaves_skipped": [{"path": "knowledge/x", "change": "modified", "reason": "no seed question with an answer"}],
        "reference_nll": {"min_effect": 0.05, "sdg_seeds": 5, "method": "paired bootstrap"},
        "judge": {"spec": "embedded:smollm2-135m-instruct", "smoke_test": True, "prefill": "Rating: [[",
                  "scoring": "logprob", "scoring_counts": {"logprob": 80, "parsed": 0, "unrated": 0},
                  "calibration": {"passed": False, "gap": 0.1, "ci": [-0.2, 0.4], "n": 10, "auc": 0.52,
                                  "min_gap": 1.0, "questions": ["112", "120"], "mean_rating": {"reference": 5.1},
                                  "unrated": 0}},
        "pairwise": {"n": 8, "wins": 3, "ties": 3, "losses": 2, "win_rate": 0.56, "ci": [0.3, 0.8],
                     "verdict": "not drawn", "unusable_games": 0},
        "mtbench": {"quick": 1, "judge_error_rate": 0.125, "smoke_judge": True, "judge_prefill": "Rating: [[",
                    "overall": {"base": 5.1, "candidate": 5.4, "delta": 0.3, "ci": [-0.2, 0.8], "verdict": "within noise"},
                    "categories": cats},
        "branch": {"judge_error_rate": 0.25, "leaves": [{"leaf": "compositional_skills/writing/freeform/haiku",
                                                          "n_questions": 6, "base": 3.0, "candidate": 4.5,
                               "delta": 1.5, "ci": [0.5, 2.5], "verdict": "improved", "change": "new"}]},
        "models": {"teacher": "embedded:smollm2-135m-instruct", "student": "embedded:smollm2-135m-instruct",
                   "judge": "embedded:smollm2-135m-instruct"},
        "seeds": {"sdg": 0, "train": 0, "bootstrap": 0},
    }
    run.update(over)
    return run


def html_of(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def test_full_comment_has_every_section():
    body = render_comment(full_run())
    assert body.startswith(MARKER)
    headings = [line for line in body.splitlines() if line.startswith("### ")]
    # What a maintainer decides on comes first: the PR's leaves, then regressions elsewhere, then MT-Bench.
    assert [h.split(" (")[0] for h in headings] == [
        "### What the PR's leaves teach", "### Regressions on control leaves", "### MT-Bench",
        "### MT-Bench pairwise: candidate vs base, both orders", "### Judged branch evaluation",
        "### Synthetic data", "### Training"]
    first = body.split("### What the PR's leaves teach")[1].split("###")[0]
    assert ("| `compositional_skills/writing/freeform/haiku` (new) | 2.310 → 1.420 (5 held-out answers) | "
            "-0.890 [-1.000, -0.800] | -0.860 [-0.970, -0.750] | 🟢 improved |") in first
    assert "at least" not in first and "reaches 0.05 nats/token." in first  # a runner's own: no calibration claimed
    assert "`knowledge/x`: not measured (no seed question with an answer)" in first
    controls = body.split("### Regressions on control leaves")[1].split("###")[0]
    assert "🔴 **1 of 2 control leaves regressed** beyond the others' move: `" + SHELL + "`." in controls
    assert controls.index(SHELL) < controls.index(IDIOMS)  # the regression first
    assert "| 🔴 regressed | 5 |" in controls and "| ⚪ within noise | 7 |" in controls  # replayed samples
    mt = body.split("### MT-Bench")[1]
    assert mt.startswith(" (judge failed calibration — these scores do not measure quality)")
    assert "judge failed calibration — these scores do not measure quality.** Judge" in mt
    assert "references rated +0.10 above degraded answers (95 % CI [-0.20, +0.40], AUC 0.52, 10 questions" in mt
    assert "```mermaid" not in body  # an uncalibrated judge's scores are not charted
    assert "3 wins, 3 ties, 2 losses over 8 questions" in body and "— not drawn" in body
    assert "40 → 12 (30 %)" in body and "`question_judge` (−20)" in body  # the filter that dropped most
    assert "| 0, 3 |" in body  # seeds held out of generation
    assert "12 replay samples from main's buffer of 3 leaves mixed in" in body
    assert "judge error rate 12.5 %" in body and "Judge error rate 25.0 %" in body  # MT-Bench, branch
    assert "embedded 135M model, its answers prefilled with `Rating: [[`" in body
    assert "| `compositional_skills/writing/freeform/haiku` (new) | 6 | 3.00 |" in body
    samples = body.split("<details><summary>Generated samples: 1 accepted, 1 dropped (with why)</summary>\n\n"
                         "Leaf `" + HAIKU + "`:")[1]
    assert "- ✅ accepted\n  - question: Write a haiku about rain." in samples
    assert "- ❌ dropped by `question_judge`: rejected\n  - question: zxq?" in samples
    local = render_comment(full_run(artifacts_url=None, results_dir="demo-out"))
    assert local.endswith("Full results: `demo-out/results.json`; generated samples: `demo-out/sdg/`.\n")
    assert "lab-hooks `0.1.0`" in body and "wall" not in body.split("<details><summary>Changed files")[1].split(
        "(wall times")[0].lower()
    assert "(https://github.com/acme/taxonomy/actions/runs/42)" in body
    assert render_comment(full_run()) == body  # no clock in it: the same results, the same bytes


def test_a_calibrated_judge_gets_its_chart_and_verdicts():
    run = full_run()
    run["judge"]["calibration"].update(passed=True, gap=5.2, ci=[4.1, 6.0], auc=0.97)
    body = render_comment(run)
    assert "### MT-Bench\n" in body and "passed calibration: references rated +5.20" in body
    assert "```mermaid\nxychart-beta" in body and "x-axis [math, reasoning, roleplay, writing]" in body
    run["mtbench"]["categories"]["math"].update(base=None, delta=None)  # every judgment unparseable
    assert "x-axis [reasoning, roleplay, writing]" in render_comment(run)
    for c in run["mtbench"]["categories"].values():
        c["candidate"] = None
    body = render_comment(run)
    assert "```mermaid" not in body and "| `math` | – | – |" in body  # the table still says so


def test_a_leaf_that_kept_nothing_is_said_with_its_dropped_samples_open():
    run = full_run()
    run["generation"]["leaves"][0].update(accepted=0, status="all samples filtered out: step 'dedup' kept 0 of 4")
    body = render_comment(run)
    assert ("⚠️ Generation kept no sample for `compositional_skills/writing/freeform/haiku`: all samples filtered "
            "out: step 'dedup' kept 0 of 4.") in body
    assert "<details open><summary>Generated samples: 1 accepted, 1 dropped (with why)</summary>" in body


def test_failed_stage_says_which_and_why_with_linked_findings():
    run = {"status": "failed", "repo": "acme/taxonomy", "head": {"ref": "pr", "sha": "b" * 40},
           "failure": {"stage": "validate", "reason": "2 findings in the changed leaves",
                       "findings": [{"file": "compositional_skills/x/qna.yaml", "line": 3, "col": 5,
                                     "severity": "error", "code": "LH101", "message": "seed_examples: too short"},
                                    {"file": "bad path/<x>.yaml", "line": 1, "col": 1, "severity": "error",
                                     "code": "LH001", "message": HOSTILE}]},
           "stages": [{"name": "diff", "seconds": 0.1, "status": "ok"}, {"name": "validate", "seconds": 0.2,
                                                                         "status": "failed"}]}
    body = render_comment(run)
    assert "### ❌ Stage `validate` failed" in body
    assert ("[`compositional_skills/x/qna.yaml:3:5`](https://github.com/acme/taxonomy/blob/"
            + "b" * 40 + "/compositional_skills/x/qna.yaml#L3)") in body
    assert "`bad path/<x>.yaml:1:1`" in body and "blob/" + "b" * 40 + "/bad" not in body  # shown, not linked
    _assert_inert(body, allowed_links=1)


def _assert_inert(body: str, allowed_links: int):
    html = _assert_no_live_markup(body)
    assert len(re.findall(r"<a href", html)) == allowed_links
    assert "evil.example/x\"" not in html
    # no autolink-able scheme or www. outside code spans (GitHub autolinks bare URLs in prose)
    prose = re.sub(r"<code>.*?</code>", "", html, flags=re.S)
    assert "https://evil" not in prose and "www.evil" not in prose and "evil" in html


def _assert_no_live_markup(body: str, where: object = None) -> str:
    """No HTML, no live mention, no workflow command, no link off the repository; returns the HTML."""
    html = html_of(body)
    assert body.startswith(MARKER), where
    assert "<img" not in html and "<script" not in html and "<!--" not in html.replace("<!-- lab-hooks", ""), where
    # no live mention: every @ is followed by a zero-width space (literal or entity)
    assert not re.search(r"@(?!\u200b|&#8203;)[A-Za-z]", body), where
    # echoed to a job log, no line can be a workflow command
    assert not any(line.lstrip().startswith("::") for line in body.splitlines()), where
    hrefs = re.findall(r'<a href="([^"]*)"', html)
    assert all(h.startswith("https://github.com/acme/taxonomy/") for h in hrefs), (where, hrefs)
    return html


def test_hostile_text_everywhere_is_inert():
    run = full_run()
    run["changed_leaves"][0]["path"] = HOSTILE
    run["generation"]["leaves"][0]["leaf"] = HOSTILE
    run["generation"]["leaves"][0]["dropped"] = {HOSTILE: 30}
    run["branch"]["leaves"][0]["leaf"] = HOSTILE
    run["leaves"][0]["path"] = run["leaves"][2]["path"] = HOSTILE
    run["leaves_skipped"][0].update(path=HOSTILE, reason=HOSTILE)
    run["judge"]["spec"] = HOSTILE
    run["generation"]["leaves"][0]["examples"]["accepted"][0]["answer"] = HOSTILE
    run["generation"]["leaves"][0]["examples"]["dropped"][0].update(dropped_by=HOSTILE, reason=HOSTILE, question=HOSTILE)
    run["generation"]["leaves"][0]["status"] = HOSTILE
    run["mtbench"]["categories"][HOSTILE] = {"base": 1, "candidate": 2, "delta": 1, "ci": [0, 2], "verdict": HOSTILE}
    run["models"]["judge"] = HOSTILE
    run["head"]["ref"] = HOSTILE
    run["artifacts_url"] = "javascript:alert(1)"
    body = render_comment(run)
    _assert_inert(body, allowed_links=0)
    assert "\n::" not in log_safe(HOSTILE) and not log_safe(HOSTILE).startswith("::")


def test_escapers_render_as_the_literal_text():
    text = "a *b* _c_ [d](e) <f> & `g` \\h"
    html = html_of(md_text(text))
    assert html.strip() == "<p>a *b* _c_ [d](e) &lt;f&gt; &amp; `g` \\h</p>"
    assert html_of(md_code("x `y` z")).strip() == "<p><code>x `y` z</code></p>"
    for leading in ("1. item", "- item", "+ item", "# heading", "=== x"):
        assert html_of(md_text(leading)).strip() == f"<p>{leading}</p>"


def test_size_limit_truncates_with_pointer_and_keeps_structure():
    findings = [{"file": f"compositional_skills/l{i}/qna.yaml", "line": i, "col": 1, "severity": "error",
                 "code": "LH999", "message": "x" * 300} for i in range(2_000)]
    run = full_run(status="failed", failure={"stage": "validate", "reason": "many", "findings": findings})
    body = render_comment(run)
    assert len(body) <= GITHUB_LIMIT and body.startswith(MARKER)
    assert "truncated" in body and "artifacts" in body
    assert body.count("```") % 2 == 0 and body.count("<details>") == body.count("</details>")
    small = render_comment(full_run(), limit=3_000)  # a cut inside the chart drops the whole chart
    assert len(small) <= 3_000 and small.count("```") % 2 == 0


def test_annotations_cannot_break_out():
    [line] = annotations([{"file": "a,b:c.yaml", "line": 3, "col": 2, "severity": "error", "code": "LH1",
                           "message": "bad\n::set-output name=x::y 100%"}])
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3,col=2,title=LH1::LH1 bad%0A::set-output name=x::y 100%25"
    assert annotations([{"file": "f", "severity": "warning", "code": "LH2", "message": "m"}]) == [
        "::warning file=f,line=1,col=1,title=LH2::LH2 m"]


def test_step_summary_and_outputs(tmp_path, monkeypatch):
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert write_step_summary("# one\n") and write_step_summary("# two\n")
    assert summary.read_text() == "# one\n# two\n"
    assert set_outputs({"verdict": "improved\nx=y", "delta": "+0.3"})
    text = output.read_text()
    m = re.match(r"verdict<<(lab_hooks_[0-9a-f]{16})\nimproved\nx=y\n\1\ndelta<<(\w+)\n\+0\.3\n\2\n$", text)
    assert m, text
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert not write_step_summary("x")


@pytest.mark.parametrize("value", [None, "n/a", float("nan")])
def test_odd_numbers_do_not_crash(value):
    run = full_run()
    run["mtbench"]["overall"]["delta"] = value
    run["training"]["phases"][0]["loss_last"] = value
    assert MARKER in render_comment(run)


# -- crafted results files (issue 15, item 1): every rendered field, typed or not ---------------------------

EVIL_URL = "https://evil.example/x)![i](https://evil.example/p.png)<img src=x>"


def test_crafted_strings_in_links_and_shas_render_inert():
    run = full_run(server_url=EVIL_URL, artifacts_url="https://github.com/acme/taxonomy/actions/runs/1\n\n"
                                                      "<img src=x onerror=alert(1)>\n@org/team [x](https://evil.example)")
    run["head"]["sha"] = "b" * 40 + ")<img src=x> @org/team"
    run["failure"] = {"stage": "validate", "reason": HOSTILE, "findings": [
        {"file": "compositional_skills/x/qna.yaml", "line": 3, "col": 1, "severity": "error",
         "code": "LH1", "message": HOSTILE}]}
    _assert_inert(render_comment(run), allowed_links=0)


def test_wrongly_typed_numbers_are_never_interpolated():
    """Counts, phase numbers and rates that are not numbers: the comment says the results file is
    malformed (and where) instead of pasting them in."""
    run = full_run()
    run["generation"]["leaves"][0].update(accepted="<img src=x onerror=alert(1)>", candidates="@org/team",
                                          dropped={HOSTILE: "@org/team"})
    run["training"]["phases"][0].update(phase="![p](https://evil.example/p.png)", new_samples="@org/team",
                                        steps="[x](https://evil.example)", replay_samples=HOSTILE)
    run["mtbench"]["quick"] = "@org/team"
    run["stages"][0]["seconds"] = "<b>x</b>"
    run["branch"]["leaves"][0]["change"] = ["unhashable"]
    body = render_comment(run)
    html = _assert_no_live_markup(body)
    assert "<a href" not in html and "evil" not in html
    assert "malformed" in body and "### Synthetic data" not in body and "### Training" not in body


@pytest.mark.parametrize("field, value", [
    ("server_url", EVIL_URL), ("server_url", "javascript:alert(1)//"), ("server_url", "http://github.com"),
    ("server_url", "https://github.com/x\n"), ("artifacts_url", "https://evil.example/acme/taxonomy/actions/runs/1"),
    ("artifacts_url", "https://github.com/acme/taxonomy/actions/runs/1)[x](https://evil.example/y"),
    ("artifacts_url", "https://github.com@evil.example/acme/taxonomy/actions/runs/1"),
])
def test_links_go_only_to_the_server_on_plain_paths(field, value):
    """A link is made only to an https URL on a plain path, on the run's own GitHub server; else none."""
    run = full_run(**{field: value})
    run["failure"] = {"stage": "validate", "reason": "r", "findings": [
        {"file": "compositional_skills/x/qna.yaml", "line": 3, "col": 1, "severity": "error", "code": "LH1", "message": "m"}]}
    html = html_of(render_comment(run))
    hrefs = re.findall(r'<a href="([^"]*)"', html)
    assert all(h.startswith("https://github.com/acme/taxonomy/") for h in hrefs), hrefs
    assert all(re.fullmatch(r"[A-Za-z0-9:/._#-]+", h) for h in hrefs), hrefs
    assert "evil.example" not in "".join(hrefs)


def _paths(value, prefix=()):
    """Every (path, value) in a nested dict/list, leaves and containers alike."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        yield from _paths(sub, prefix + (key,))


def _replaced(run, path, new):
    run = copy.deepcopy(run)
    target = run
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return run


WRONG_VALUES = [HOSTILE, {"k": HOSTILE}, [HOSTILE], True, -1, 1e308, float("nan"), float("inf"), None, "12", 3.5]


def test_any_value_anywhere_renders_without_crash_and_inert():
    """Each field of a full results file replaced by each wrongly typed or hostile value: the comment is
    still rendered (a malformed file says so), and nothing in it is live markup or a foreign link."""
    base = full_run()
    base["failure"] = {"stage": "validate", "reason": "r", "findings": [
        {"file": "compositional_skills/x/qna.yaml", "line": 3, "col": 1, "severity": "error", "code": "LH1", "message": "m"}]}
    for path, _ in _paths(base):
        for value in WRONG_VALUES if path else ():
            _assert_no_live_markup(render_comment(_replaced(base, path, value)), (path, value))


def test_every_field_of_a_full_run_is_typed_in_the_results_schema():
    """The schema the comment checks names every field of a full run: a field the comment renders
    must be typed there before it can reach a comment."""
    from lab_hooks.report.results import declared

    missing = [".".join(map(str, p)) for p, _ in _paths(full_run()) if p and not declared(p)]
    assert not missing, missing


def test_numbers_are_formatted_from_numbers_only():
    run = full_run()
    run["generation"]["leaves"][0].update(candidates=40.0, accepted=12)
    assert "40 → 12 (30 %)" in render_comment(run)
    run["generation"]["leaves"][0]["accepted"] = "12"  # a string is not a count, even a numeric one
    body = render_comment(run)
    assert "malformed" in body and "accepted" in body and "40 →" not in body


def test_the_default_minimum_effect_says_what_it_was_calibrated_on():
    run = full_run()
    run["reference_nll"].update(min_effect=0.11, calibrated_on="null retrainings of <b>the demo</b>")
    first = render_comment(run).split("### What the PR's leaves teach")[1].split("###")[0]
    assert ("reaches 0.11 nats/token (the default, calibrated on null retrainings of &lt;b&gt;the demo&lt;/b&gt;; "
            "a runner whose training differs calibrates its own: `bench/planted.py`, `--min-effect`).") in first
    assert "<b>" not in first
