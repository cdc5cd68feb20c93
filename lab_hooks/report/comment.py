"""The sticky PR comment: one markdown body rendered from a plain run-results dict.

`render_comment(run)` is pure: `lab-hooks pr` builds `run` (and saves it as the
run's JSON artifact), and the commenting job renders it again from that JSON.
Keys (all optional except `status`; a stage that did not run has no key):

    status: "ok" | "failed"
    leaves: [{path, changed, change, reference_nll: {base, candidate, delta, ci, verdict, n_answers, held_out,
              perplexity: {base, candidate}, beyond_controls: {delta, ci, controls_delta, controls}}}]
    leaves_skipped: [{path, change, reason}]
    judge: {spec, smoke_test, scoring, calibration: {passed, gap, ci, n, auc, min_gap}}
    failure: {stage, reason, findings: [{file, line, col, severity, code, message}]}
    version, repo, pr, base: {ref, sha}, head: {ref, sha}, artifacts_url, server_url
    stages: [{name, seconds, status: ok|failed|cached|skipped}]
    changed_leaves: [{path, change: added|modified|renamed|deleted, kind, blob_sha}]
    generation: {leaves: [{leaf, candidates, accepted, dropped: {filter: count}, status, held_out_seeds,
                 judges: {applied, reason}, examples: {accepted: [fields], dropped: [{fields, dropped_by, reason}]}}]}
    training: {method, replay_samples, phases: [{phase, new_samples, replay_samples, replay_ratio,
               replay: {leaf: count}, steps, loss_first, loss_last, dropped}]}
    mtbench: {quick, judge_error_rate, overall: {base, candidate, delta, ci, verdict},
              categories: {name: {base, candidate, delta, ci, verdict}}, smoke_judge, judge_prefill}
    branch: {judge_error_rate,
             leaves: [{leaf, change: new|modified|unchanged, n_questions, base, candidate, delta, ci, verdict}]}
    pairwise: {n, wins, ties, losses, win_rate, ci, verdict, unusable_games}
    results_dir: where results.json and the generated samples are (a local run, no artifacts_url)
    models: {teacher, student, judge, base_checkpoint, candidate_checkpoint}
    seeds: {name: int}

The comment leads with what a maintainer decides on: one line per changed leaf
(the judge-free reference NLL, base → candidate, its CI and the verdict beyond what
the control leaves moved), then regressions on the control leaves, then MT-Bench
with the judge's calibration status, then generated samples (accepted, and dropped
with the reason) in a collapsed section. No wall times: the same inputs and seed
render the same bytes (they are in results.json).

Everything a contributor or a model wrote goes through `escape` (leaf paths,
filter names, finding messages, failure reasons); numbers are formatted here from
int/float only; links are made only to plain https paths on the run's own GitHub
server. `run` is first checked against results.schema.json (report/results.py):
a malformed file is reported as such, never rendered field by field.
"""

from __future__ import annotations

import re

from lab_hooks.report import results
from lab_hooks.report.results import is_number
from lab_hooks.report.escape import md_code, md_text, one_line, safe_url, url_host

MARKER = "<!-- lab-hooks:pr-report -->"
GITHUB_LIMIT = 65_536

VERDICT_MARK = {"improved": "🟢 improved", "regressed": "🔴 regressed",
                "within noise": "⚪ within noise", "insufficient data": "⚫ insufficient data",
                "not drawn": "— not drawn"}
UNCALIBRATED = "judge failed calibration — these scores do not measure quality"


def _num(value, fmt: str = ".2f") -> str:
    """A number formatted with `fmt`; anything else (None, text) is a dash."""
    return format(float(value), fmt) if is_number(value) else "–"


def _count(value) -> str:
    """A whole number as digits; anything else is a dash."""
    return str(int(value)) if is_number(value) and float(value).is_integer() else "–"


def _signed(value) -> str:
    return _num(value, "+.2f")


def _ci(ci) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "–"
    return f"[{_signed(ci[0])}, {_signed(ci[1])}]"


def _verdict(v) -> str:
    if not isinstance(v, str) or not v:
        return "–"
    return VERDICT_MARK.get(v, md_text(v, 30))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _server(run: dict) -> str | None:
    """The GitHub server to link to (https://host, nothing after), or None: make no link."""
    return safe_url((run.get("server_url") or "https://github.com").rstrip("/"))


def _repo_url(run: dict) -> str | None:
    server, repo = _server(run), run.get("repo")
    if server and isinstance(repo, str) and re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        return safe_url(f"{server}/{repo}")
    return None


def _file_link(run: dict, finding: dict) -> str:
    """`file:line:col`, linked to the PR head's blob when the repo is known."""
    file, line, col = finding.get("file") or "?", finding.get("line"), finding.get("col")
    label = md_code(f"{file}:{_count(line) if line else '?'}:{_count(col) if col else '?'}")
    repo_url, sha = _repo_url(run), (run.get("head") or {}).get("sha")
    if repo_url and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
        url = safe_url(f"{repo_url}/blob/{sha}/{file}")
        if url and ".." not in file.split("/"):
            return f"[{label}]({url}#L{_count(line)})" if _count(line) != "–" else f"[{label}]({url})"
    return label


def _header(run: dict) -> list[str]:
    status = run.get("status")
    title = "✅ lab-hooks: PR evaluated" if status == "ok" else "❌ lab-hooks: PR run failed"
    out = [MARKER, f"## {title}", ""]
    base, head = run.get("base") or {}, run.get("head") or {}
    if base or head:
        out.append(f"Base {md_code(base.get('ref', '?'))} ({md_code(str(base.get('sha', ''))[:12])}) → "
                   f"head {md_code(head.get('ref', '?'))} ({md_code(str(head.get('sha', ''))[:12])})")
        out.append("")
    return out


def _nll(value, signed: bool = False) -> str:
    return _num(value, "+.3f" if signed else ".3f")


def _nll_ci(ci) -> str:
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return "–"
    return f"[{_nll(ci[0], True)}, {_nll(ci[1], True)}]"


def _reference_row(leaf: dict) -> list[str]:
    r = leaf.get("reference_nll") or {}
    beyond = r.get("beyond_controls") or {}
    answers = f"{_count(r.get('n_answers'))} {'held-out ' if r.get('held_out') is True else ''}answers"
    return [md_code(leaf.get("path", "?")) + (" (new)" if leaf.get("change") == "new" else ""),
            f"{_nll(r.get('base'))} → {_nll(r.get('candidate'))} ({answers})",
            f"{_nll(r.get('delta'), True)} {_nll_ci(r.get('ci'))}",
            f"{_nll(beyond.get('delta'), True)} {_nll_ci(beyond.get('ci'))}", _verdict(r.get("verdict"))]


REFERENCE_HEADER = ["Leaf", "Reference answers, NLL/token (lower is better)", "Δ (95 % CI)",
                    "Δ beyond controls (95 % CI)", "Verdict"]


def _kept_nothing(run: dict) -> list[dict]:
    return [g for g in (run.get("generation") or {}).get("leaves", [])
            if isinstance(g, dict) and g.get("status", "ok") != "ok"]


def _leaves(run: dict) -> list[str]:
    """The maintainer's first lines: did each changed leaf teach the model what it claims?"""
    rows = [leaf for leaf in run.get("leaves") or [] if leaf.get("changed") is True]
    empty = _kept_nothing(run)
    skipped = [s for s in run.get("leaves_skipped") or [] if s.get("change") != "unchanged"]
    if not (rows or empty or skipped):
        return []
    out = ["### What the PR's leaves teach", ""]
    if rows:
        out += _table(REFERENCE_HEADER, [_reference_row(leaf) for leaf in rows]) + [""]
        stats = run.get("reference_nll") or {}
        effect = f" and reaches {_num(stats['min_effect'], 'g')} nats/token" if is_number(stats.get("min_effect")) else ""
        if effect and isinstance(stats.get("calibrated_on"), str):
            effect += (f" (the default, calibrated on {md_text(stats['calibrated_on'], 200)}; a runner whose "
                       "training differs calibrates its own: `bench/planted.py`, `--min-effect`)")
        out += ["How likely the candidate finds each leaf's own seed answers, against main's model (no judge); "
                "measured on seeds held out of generation and training where the leaf has enough. Training moves "
                "every leaf a little, so the verdict is on the Δ beyond the control leaves' Δ: improved/regressed "
                f"only when its 95 % CI excludes 0{effect}.", ""]
    for leaf in empty:
        out += [f"⚠️ Generation kept no sample for {md_code(leaf.get('leaf', '?'))}: "
                f"{md_text(leaf.get('status'), 300)}. It was not trained; the dropped samples and why are under "
                "*Generated samples* below.", ""]
    for skip in skipped:
        out += [f"- {md_code(skip.get('path', '?'))}: not measured ({md_text(skip.get('reason'), 200)}).", ""]
    return out


def _controls(run: dict) -> list[str]:
    """Regressions elsewhere: the unchanged leaves the evaluation watched."""
    rows = [leaf for leaf in run.get("leaves") or [] if leaf.get("changed") is False]
    if not rows:
        return []
    regressed = [leaf for leaf in rows if (leaf.get("reference_nll") or {}).get("verdict") == "regressed"]
    replayed = {}
    for phase in (run.get("training") or {}).get("phases", []):
        for name, count in (phase.get("replay") or {}).items():
            replayed[name] = replayed.get(name, 0) + count if is_number(count) else replayed.get(name, 0)
    if regressed:
        head = (f"🔴 **{len(regressed)} of {len(rows)} control leaves regressed** beyond the others' move: "
                + ", ".join(md_code(leaf.get("path", "?")) for leaf in regressed) + ".")
    else:
        head = f"No control leaf regressed ({len(rows)} unchanged leaves checked, the same ones every run)."
    ordered = regressed + [leaf for leaf in rows if leaf not in regressed]
    table = _table(REFERENCE_HEADER + ["Replayed samples"],
                   [_reference_row(leaf) + [_count(replayed.get(leaf.get("path"), 0))] for leaf in ordered])
    effect = (run.get("reference_nll") or {}).get("min_effect_controls")
    rule = [f"A control's verdict needs its Δ beyond the other controls' to reach {_num(effect, 'g')} nats/token, "
            "as well as a 95 % CI that excludes 0.", ""] if is_number(effect) else []
    return ["### Regressions on control leaves", "", head, ""] + table + [""] + rule


def _calibration(run: dict) -> list[str]:
    """One line on the judge: did it pass its calibration, how were its ratings read."""
    judge = run.get("judge") or {}
    cal = judge.get("calibration")
    if not isinstance(cal, dict):
        return []
    measured = (f"references rated {_signed(cal.get('gap'))} above degraded answers (95 % CI {_ci(cal.get('ci'))}, "
                f"AUC {_num(cal.get('auc'))}, {_count(cal.get('n'))} questions; passing needs the CI above 0 and a "
                f"gap of at least {_num(cal.get('min_gap'), 'g')})")
    scoring = {"logprob": "ratings are the expectation over the judge's probabilities of 1–10",
               "parsed": "ratings are the `[[n]]` the judge wrote"}.get(judge.get("scoring"))
    tail = f" {scoring[:1].upper()}{scoring[1:]}." if scoring else ""
    if cal.get("passed") is True:
        return [f"Judge {md_code(judge.get('spec', '?'))} passed calibration: {measured}.{tail}", ""]
    return [f"**⚠️ {UNCALIBRATED}.** Judge {md_code(judge.get('spec', '?'))} failed calibration: {measured}; "
            f"no verdict is drawn from its scores.{tail}", ""]


def _judge_failed(run: dict) -> bool:
    cal = (run.get("judge") or {}).get("calibration")
    return isinstance(cal, dict) and cal.get("passed") is False


def _failure(run: dict) -> list[str]:
    failure = run.get("failure")
    if not failure:
        return []
    out = [f"### ❌ Stage {md_code(failure.get('stage', '?'))} failed", "",
           md_text(failure.get("reason", "no reason given"), 2_000), ""]
    findings = failure.get("findings") or []
    if findings:
        rows = [[_file_link(run, f), md_text(f.get("severity", ""), 10), md_code(f.get("code", "")),
                 md_text(f.get("message", ""), 500)] for f in findings]
        out += _table(["Where", "Severity", "Rule", "Message"], rows) + [""]
    return out


def _changed(run: dict) -> list[str]:
    leaves = run.get("changed_leaves")
    if leaves is None:
        return []
    if not leaves:
        return ["This PR changes no taxonomy leaf.", ""]
    rows = [[md_code(l.get("path", "?")), md_text(l.get("change", ""), 20), md_text(l.get("kind") or "–", 30),
             md_code(str(l.get("blob_sha") or "")[:12]) if l.get("blob_sha") else "–"] for l in leaves]
    return ["Changed leaf files:", ""] + _table(["Leaf", "Change", "Kind", "Blob"], rows) + [""]


def _generation(run: dict) -> list[str]:
    gen = run.get("generation")
    if not gen:
        return []
    rows = []
    for leaf in gen.get("leaves", []):
        dropped = leaf.get("dropped") or {}
        top = max(dropped.items(), key=lambda kv: kv[1]) if dropped else None
        cand, acc = leaf.get("candidates"), leaf.get("accepted")
        rate = f" ({_num(100 * acc / cand, '.0f')} %)" if is_number(cand) and cand and is_number(acc) else ""
        status = "" if leaf.get("status", "ok") == "ok" else f" ⚠️ {md_text(leaf.get('status'), 60)}"
        held = leaf.get("held_out_seeds") or []
        rows.append([md_code(leaf.get("leaf", "?")), f"{_count(cand)} → {_count(acc)}{rate}{status}",
                     f"{md_code(top[0], 60)} (−{_count(top[1])})" if top and top[1] else "–",
                     ", ".join(_count(i) for i in held) if held else "none"])
    head = ["### Synthetic data", ""]
    if gen.get("teacher"):
        head = ["### Synthetic data", "", f"Teacher {md_code(gen['teacher'])}.", ""]
    out = head + _table(["Leaf", "Candidates → accepted", "Dropped most by", "Seeds held out (index)"], rows) + [""]
    judges = [_mapping(leaf, "judges") for leaf in gen.get("leaves", [])]
    unapplied = sorted({md_text(j.get("reason"), 300) for j in judges if j.get("applied") is False})
    out += [f"⚠️ Judge filtering was not applied: {reason}." for reason in unapplied] + ([""] if unapplied else [])
    return out


def _mapping(parent: dict, key: str) -> dict:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _samples(run: dict) -> list[str]:
    """A few accepted and a few dropped samples per changed leaf, each dropped one with its reason:
    what a contributor fixes their seeds from. Collapsed, except for a leaf that kept nothing."""
    out = []
    for leaf in (run.get("generation") or {}).get("leaves", []):
        examples = _mapping(leaf, "examples")
        accepted, dropped = examples.get("accepted") or [], examples.get("dropped") or []
        if not (accepted or dropped):
            continue
        kept_nothing = leaf.get("status", "ok") != "ok"
        # Nothing untrusted inside the HTML tag: the leaf is named in the markdown below it.
        summary = f"Generated samples: {len(accepted)} accepted, {len(dropped)} dropped (with why)"
        out += [f"<details{' open' if kept_nothing else ''}><summary>{summary}</summary>", "",
                f"Leaf {md_code(leaf.get('leaf', '?'))}:", ""]
        for sample in accepted:
            out.append("- ✅ accepted")
            out += _fields(sample)
        for sample in dropped:
            out.append(f"- ❌ dropped by {md_code(sample.get('dropped_by', '?'), 60)}: "
                       f"{md_text(sample.get('reason'), 300)}")
            out += _fields(sample)
        out += ["", "</details>", ""]
    return out


def _fields(sample: dict) -> list[str]:
    return [f"  - {name}: {md_text(sample[name], 400)}" for name in ("context", "question", "answer")
            if sample.get(name)]


def _training(run: dict) -> list[str]:
    tr = run.get("training")
    if not tr:
        return []
    rows = [[_count(p.get("phase")), _count(p.get("new_samples")), _count(p.get("replay_samples")),
             _num(p.get("replay_ratio")), _count(p.get("steps")),
             f"{_num(p.get('loss_first'), '.3f')} → {_num(p.get('loss_last'), '.3f')}"]
            for p in tr.get("phases", [])]
    out = ["### Training", ""]
    if tr.get("method"):
        replay = (f"; {_count(tr['replay_samples'])} replay samples from main's buffer of "
                  f"{_count(tr.get('replay_buffer_leaves'))} leaves mixed in") if is_number(tr.get("replay_samples")) else ""
        out += [f"Method {md_code(tr['method'])}, from {md_code(tr.get('parent') or 'the base model')}{replay}.", ""]
    return out + _table(["Phase", "New samples", "Replay samples", "Replay ratio", "Steps", "Loss"], rows) + [""]


def _mtbench(run: dict) -> list[str]:
    mt = run.get("mtbench")
    if not mt:
        return []
    failed = _judge_failed(run)
    out = [f"### MT-Bench{f' ({UNCALIBRATED})' if failed else ''}", ""] + _calibration(run)
    notes = []
    if mt.get("quick"):
        notes.append(f"quick subset: {_count(mt['quick'])} question(s) per category")
    notes += _judge_notes(mt)
    if mt.get("smoke_judge"):
        prefill = f", its answers prefilled with {md_code(mt['judge_prefill'], 30)}" if mt.get("judge_prefill") else ""
        notes.append(f"the judge is the embedded 135M model{prefill}: a smoke test, not a measurement")
    out += _sentence(notes)
    rows = []
    cats = mt.get("categories") or {}
    for name, c in [("overall", mt.get("overall") or {})] + sorted(cats.items()):
        label = "**overall**" if name == "overall" and c is mt.get("overall") else md_code(name)
        rows.append([label, _num(c.get("base")), _num(c.get("candidate")), _signed(c.get("delta")),
                     _ci(c.get("ci")), _verdict(c.get("verdict"))])
    out += _table(["Category", "Base", "Candidate", "Δ", "95 % CI", "Verdict"], rows) + [""]
    scored = {name: c for name, c in cats.items() if c.get("base") is not None and c.get("candidate") is not None}
    if scored and not failed:  # a category without scores is left out, not drawn as 0
        out += _chart(scored)
    return out


def _pairwise(run: dict) -> list[str]:
    pairs = run.get("pairwise")
    if not pairs:
        return []
    label = f" ({UNCALIBRATED})" if _judge_failed(run) else ""
    return [f"### MT-Bench pairwise: candidate vs base, both orders{label}", "",
            f"{_count(pairs.get('wins'))} wins, {_count(pairs.get('ties'))} ties, {_count(pairs.get('losses'))} "
            f"losses over {_count(pairs.get('n'))} questions (a verdict that flips when the answers swap places "
            f"counts as a tie); win rate {_num(pairs.get('win_rate'))} (95 % CI {_ci(pairs.get('ci'))}) — "
            f"{_verdict(pairs.get('verdict'))}.", ""]


def _judge_notes(section: dict) -> list[str]:
    rate = section.get("judge_error_rate")
    return [] if not is_number(rate) else [f"judge error rate {_num(100 * rate, '.1f')} % (unparseable judgments excluded)"]


def _sentence(notes: list[str]) -> list[str]:
    return [notes[0][:1].upper() + "; ".join(notes)[1:] + ".", ""] if notes else []


def _chart(cats: dict) -> list[str]:
    """A Mermaid bar chart (GitHub renders it): base then candidate per category."""
    names = [one_line(n, 20) for n in sorted(cats)]
    names = ["".join(ch for ch in n if ch.isalnum() or ch == "_") or "?" for n in names]

    def series(key):
        return ", ".join(_num(cats[n].get(key), ".2f").replace("–", "0") for n in sorted(cats))

    return ["```mermaid", "xychart-beta", '    title "MT-Bench per category (first bar base, second candidate)"',
            f"    x-axis [{', '.join(names)}]", '    y-axis "score" 0 --> 10',
            f"    bar [{series('base')}]", f"    bar [{series('candidate')}]", "```", ""]


def _branch(run: dict) -> list[str]:
    br = run.get("branch")
    if not br or not br.get("leaves"):
        return []
    tags = {"new": " (new)", "unchanged": " (unchanged, control)"}
    rows = [[md_code(l.get("leaf", "?")) + tags.get(l.get("change"), ""), _num(l.get("n_questions"), ".0f"),
             _num(l.get("base")), _num(l.get("candidate")), _signed(l.get("delta")), _ci(l.get("ci")),
             _verdict(l.get("verdict"))] for l in br["leaves"]]
    label = f" ({UNCALIBRATED})" if _judge_failed(run) else ""
    return ([f"### Judged branch evaluation (the judge rates answers to the seed questions){label}", ""]
            + _sentence(_judge_notes(br))
            + _table(["Leaf", "Questions", "Base", "Candidate", "Δ", "95 % CI", "Verdict"], rows) + [""])


def _details(run: dict) -> list[str]:
    out = ["<details><summary>Changed files, models, seeds, stages</summary>", ""] + _changed(run)
    models = run.get("models") or {}
    if models:
        out += _table(["Role", "Model"], [[md_text(k, 40), md_code(v)] for k, v in models.items() if v]) + [""]
    seeds = run.get("seeds") or {}
    if seeds:
        out += ["Seeds: " + ", ".join(f"{md_text(k, 40)}={md_code(v, 30)}" for k, v in seeds.items()), ""]
    stages = run.get("stages") or []
    if stages:
        out += ["Stages: " + ", ".join(f"{md_code(s.get('name', '?'), 30)} {md_text(s.get('status', ''), 20)}"
                                       for s in stages) + " (wall times: results.json).", ""]
    out += [f"lab-hooks {md_code(run.get('version', '?'), 30)}", "", "</details>", ""]
    return out


def _footer(run: dict) -> list[str]:
    server = _server(run)
    url = safe_url(run.get("artifacts_url"), url_host(server)) if server else None
    if url:
        return [f"[Full results (JSON) and generated samples]({url})"]
    local = run.get("results_dir")
    if local:
        return [f"Full results: {md_code(f'{local}/results.json')}; generated samples: {md_code(f'{local}/sdg/')}."]
    return ["Full results (JSON) and generated samples are in this run's artifacts."]


SECTIONS = (_header, _failure, _leaves, _controls, _mtbench, _pairwise, _branch, _generation, _training, _samples,
            _details)


def malformed(problem: str) -> dict:
    """The run to report instead of a results file that does not match its schema."""
    return {"status": "failed", "failure": {"stage": "report", "reason": f"the run's results file is malformed "
                                             f"({problem}); its report cannot be shown"}}


def render_comment(run: dict, limit: int = GITHUB_LIMIT) -> str:
    """The comment body, under `limit` characters (cut at a section line, with a pointer)."""
    problem = results.problem(run)
    if problem:
        run = malformed(problem)
    lines = [line for section in SECTIONS for line in section(run)]
    footer = _footer(run)
    body = "\n".join(lines + footer) + "\n"
    if len(body) <= limit:
        return body
    return _truncate(lines, footer, limit)


def _truncate(lines: list[str], footer: list[str], limit: int) -> str:
    """Keep whole lines up to the budget; never leave a fence or <details> open."""
    budget = limit - 300 - sum(len(f) + 1 for f in footer)  # room for the note and the footer
    kept, size, in_fence, details_open = [], 0, False, False
    fence_start = 0
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        if line.startswith("```"):
            in_fence = not in_fence
            fence_start = len(kept)
        if line.startswith("<details>"):
            details_open = True
        if line == "</details>":
            details_open = False
        kept.append(line)
        size += len(line) + 1
    if in_fence:
        kept = kept[:fence_start]
    if details_open:
        kept.append("</details>")
    note = ["", "**⚠️ This comment was truncated to fit GitHub's 65,536-character limit; "
                "the full report is in the run's artifacts.**", ""]
    return "\n".join(kept + note + footer) + "\n"
