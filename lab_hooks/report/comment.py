"""The sticky PR comment: one markdown body rendered from a plain run-results dict.

`render_comment(run)` is pure: `lab-hooks pr` builds `run` (and saves it as the
run's JSON artifact), and the commenting job renders it again from that JSON.
Keys (all optional except `status`; a stage that did not run has no key):

    status: "ok" | "failed"
    failure: {stage, reason, findings: [{file, line, col, severity, code, message}]}
    version, repo, pr, base: {ref, sha}, head: {ref, sha}, artifacts_url, server_url
    stages: [{name, seconds, status: ok|failed|cached|skipped}]
    changed_leaves: [{path, change: added|modified|renamed|deleted, kind, blob_sha}]
    generation: {leaves: [{leaf, candidates, accepted, dropped: {filter: count}, status}]}
    training: {method, phases: [{phase, new_samples, replay_samples, replay_ratio,
               steps, loss_first, loss_last, dropped}]}
    mtbench: {quick, judge_error_rate, overall: {base, candidate, delta, ci, verdict},
              categories: {name: {base, candidate, delta, ci, verdict}}, smoke_judge, judge_prefill}
    branch: {judge_error_rate,
             leaves: [{leaf, change: new|modified|unchanged, n_questions, base, candidate, delta, ci, verdict}]}
    results_dir: where results.json and the generated samples are (a local run, no artifacts_url)
    models: {teacher, student, judge, base_checkpoint, candidate_checkpoint}
    seeds: {name: int}

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
                "within noise": "⚪ within noise", "insufficient data": "⚫ insufficient data"}


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
    mt = (run.get("mtbench") or {}).get("overall")
    if mt:
        out.append(f"**MT-Bench overall: {_num(mt.get('base'))} → {_num(mt.get('candidate'))} "
                   f"({_signed(mt.get('delta'))}, 95 % CI {_ci(mt.get('ci'))}) — {_verdict(mt.get('verdict'))}**")
        out.append("")
    return out


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
        return ["### Changed leaves", "", "This PR changes no taxonomy leaf.", ""]
    rows = [[md_code(l.get("path", "?")), md_text(l.get("change", ""), 20), md_text(l.get("kind") or "–", 30),
             md_code(str(l.get("blob_sha") or "")[:12]) if l.get("blob_sha") else "–"] for l in leaves]
    return ["### Changed leaves", ""] + _table(["Leaf", "Change", "Kind", "Blob"], rows) + [""]


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
        rows.append([md_code(leaf.get("leaf", "?")), f"{_count(cand)} → {_count(acc)}{rate}{status}",
                     f"{md_code(top[0], 60)} (−{_count(top[1])})" if top and top[1] else "–"])
    head = ["### Synthetic data", ""]
    if gen.get("teacher"):
        head = ["### Synthetic data", "", f"Teacher {md_code(gen['teacher'])}.", ""]
    return head + _table(["Leaf", "Candidates → accepted", "Dropped most by"], rows) + [""]


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
        out += [f"Method {md_code(tr['method'])}, from {md_code(tr.get('parent') or 'the base model')}.", ""]
    return out + _table(["Phase", "New samples", "Replay samples", "Replay ratio", "Steps", "Loss"], rows) + [""]


def _mtbench(run: dict) -> list[str]:
    mt = run.get("mtbench")
    if not mt:
        return []
    out = ["### MT-Bench", ""]
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
    if scored:  # a category without scores is left out, not drawn as 0
        out += _chart(scored)
    return out


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
    return (["### Branch evaluation (the PR's leaves)", ""] + _sentence(_judge_notes(br))
            + _table(["Leaf", "Questions", "Base", "Candidate", "Δ", "95 % CI", "Verdict"], rows) + [""])


def _details(run: dict) -> list[str]:
    out = ["<details><summary>Models, seeds, timings</summary>", ""]
    models = run.get("models") or {}
    if models:
        out += _table(["Role", "Model"], [[md_text(k, 40), md_code(v)] for k, v in models.items() if v]) + [""]
    seeds = run.get("seeds") or {}
    if seeds:
        out += ["Seeds: " + ", ".join(f"{md_text(k, 40)}={md_code(v, 30)}" for k, v in seeds.items()), ""]
    stages = run.get("stages") or []
    if stages:
        total = sum(s["seconds"] for s in stages if is_number(s.get("seconds")))
        rows = [[md_code(s.get("name", "?")), md_text(s.get("status", ""), 20), f"{_num(s.get('seconds'), '.1f')} s"]
                for s in stages] + [["**total**", "", f"{_num(total, '.1f')} s"]]
        out += _table(["Stage", "Status", "Wall time"], rows) + [""]
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


SECTIONS = (_header, _failure, _changed, _mtbench, _branch, _generation, _training, _details)


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
