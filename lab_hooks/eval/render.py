"""The results dict as markdown: what a maintainer reads in the PR comment."""

from __future__ import annotations


def _num(value: float | None, signed: bool = False, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ci(ci: list[float] | None, digits: int = 2) -> str:
    return "–" if ci is None else f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _row(label: str, d: dict, *before: str, after: tuple[str, ...] = ()) -> str:
    cells = [label, *before, _num(d["base"]), _num(d["candidate"]), _num(d["delta"], True), _ci(d["ci"]),
             d["verdict"], str(d["n_questions"]), *after]
    return "| " + " | ".join(cells) + " |"


def _errors(errors: dict) -> str:
    parts = [f"{role} {e['errors']}/{e['judgments']} ({e['rate'] * 100:.1f} %)" for role, e in errors.items()]
    return "Unparseable judgments (no `[[rating]]` in 1–10; excluded from the means): " + ", ".join(parts) + "."


def _short(model_id: str) -> str:
    return model_id[:12] if len(model_id) == 64 else model_id


def _trusted_by_name(results: dict) -> list[str]:
    """A line for each model whose cached results are keyed by what it is called, not by its weights."""
    named = [(role, m) for role, m in (*results["models"].items(), ("judge", results["judge"]))
             if m["id_source"] in ("server", "spec")]
    return [f"- The {role} `{m['spec']}` is identified by "
            + ("its server's `/v1/models` entry" if m["id_source"] == "server" else "its spec")
            + ", not by its weights: its cached answers/judgments are trusted by name (serve new weights "
            "under a new name, or run with `--no-cache`)." for role, m in named]


FAILED_LABEL = "⚠️ judge failed calibration — these scores do not measure quality"


def reference_lines(results: dict) -> list[str]:
    """The judge-free metric per leaf: a table, and which answers were measured."""
    leaves = results.get("leaves") or []
    lines = []
    if leaves:
        rules = results["statistics"]["reference_nll"]
        lines += ["### Reference answers: NLL per token (lower is better; no judge)", "",
                  "| leaf | change | answers | base | candidate | Δ | 95 % CI | Δ beyond controls | 95 % CI | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for leaf in leaves:
            r, beyond = leaf["reference_nll"], leaf["reference_nll"]["beyond_controls"]
            answers = f"{r['n_answers']}" + (" held out" if r["held_out"] else "")
            cells = [f"`{leaf['path']}`", leaf["change"], answers, _num(r["base"], digits=3),
                     _num(r["candidate"], digits=3), _num(r["delta"], True, 3), _ci(r["ci"], 3),
                     _num(beyond["delta"], True, 3), _ci(beyond["ci"], 3), r["verdict"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Verdict: the leaf's Δ minus the controls' (unchanged leaves) pooled Δ, joint bootstrap; "
                      f"*improved*/*regressed* only when its CI excludes 0 and it reaches "
                      f"{rules['min_effect']:g} nats/token (a changed leaf) or "
                      f"{rules.get('min_effect_controls', rules['min_effect']):g} (a control)"
                      + (f"; the defaults, calibrated on {rules['calibrated_on']}." if "calibrated_on" in rules else "."),
                  ""]
    for skip in results.get("leaves_skipped") or []:
        lines.append(f"- `{skip['path']}` ({skip['change']}): no reference NLL: {skip['reason']}.")
    return lines + ([""] if results.get("leaves_skipped") else [])


def calibration_line(calibration: dict | None) -> str | None:
    """One sentence: did the judge pass its calibration, by how much."""
    if calibration is None:
        return None
    gap = "–" if calibration["gap"] is None else f"{calibration['gap']:+.2f}"
    ci = "–" if calibration["ci"] is None else f"[{calibration['ci'][0]:+.2f}, {calibration['ci'][1]:+.2f}]"
    auc = "–" if calibration["auc"] is None else f"{calibration['auc']:.2f}"
    measured = (f"reference answers rated {gap} above degraded ones (95 % CI {ci}, AUC {auc}, "
                f"{calibration['n']} questions; pass: CI above 0 and gap ≥ {calibration['min_gap']:g})")
    if calibration["passed"]:
        return f"The judge passed calibration: {measured}."
    return f"**{FAILED_LABEL}**: {measured}. No verdict is drawn from its scores."


def render(results: dict) -> str:
    judge = results["judge"]
    lines = ["## Evaluation: candidate vs base", ""]
    lines += reference_lines(results)
    calibrated = calibration_line(judge.get("calibration"))
    if calibrated:
        lines += [calibrated, ""]
    if judge["smoke_test"]:
        lines += [f"> **Smoke-test judge.** `{judge['spec']}` is the embedded 135M model: it exercises the "
                  "pipeline on CPU but cannot judge answers. These scores say nothing about model quality; "
                  "use a real judge (`--judge`) on a GPU runner.", ""]
    mt = results.get("mtbench")
    if mt:
        subset = mt["subset"]
        n = len(subset["question_ids"])
        which = (f"quick subset: {subset['quick']} per category, {n} questions (ids {', '.join(subset['question_ids'])})"
                 if subset["quick"] is not None else f"all {n} questions")
        lines += [f"### MT-Bench — {which}", "",
                  "| | base | candidate | Δ | 95 % CI | verdict | questions |", "|---|---|---|---|---|---|---|",
                  _row("**overall**", mt["overall"])]
        lines += [_row(f"turn {t}", d) for t, d in mt["turns"].items()]
        lines += [_row(c, d) for c, d in mt["categories"].items()]
        lines += ["", _errors(mt["errors"])]
        if mt["judge_noise"]:
            for role, noise in mt["judge_noise"].items():
                if noise:
                    lines.append(f"Judge noise ({noise['repeats']} judgments per answer), {role}: one judgment "
                                 f"±{_num(noise['item_sd'])} (sd), overall score from single repeats "
                                 f"{_num(noise['overall_range'][0])}–{_num(noise['overall_range'][1])} "
                                 f"(sd {_num(noise['overall_sd'])}).")
        lines.append("")
    branch = results.get("branch")
    if branch:
        lines += ["### Branch: the PR's skill leaves (+ a fixed sample of unchanged ones)", ""]
        if branch["leaves"]:
            lines += ["| leaf | change | base | candidate | Δ | 95 % CI | verdict | questions | status |",
                      "|---|---|---|---|---|---|---|---|---|"]
            lines += [_row(f"`{leaf['leaf']}`", leaf, leaf["change"], after=(leaf["status"],))
                      for leaf in branch["leaves"]]
            lines += ["", _errors(branch["errors"])]
        for skip in branch["skipped"]:
            lines.append(f"- `{skip['leaf']}` ({skip['change']}) not evaluated: {skip['reason']}.")
        lines.append("")
    pairs = results.get("pairwise")
    if pairs:
        rate = "–" if pairs["win_rate"] is None else f"{pairs['win_rate']:.2f}"
        lines += ["### Pairwise: candidate vs base, both orders", "",
                  f"{pairs['wins']} wins, {pairs['ties']} ties, {pairs['losses']} losses over {pairs['n']} questions "
                  f"(a verdict that flips with the order counts as a tie); win rate {rate} "
                  f"(95 % CI {_ci(pairs['ci'])}) — {pairs['verdict']}; {pairs['unusable_games']} game(s) unusable.", ""]
    st = results["statistics"]
    models = results["models"]
    lines += [
        "### How this was measured", "",
        f"- Base `{models['base']['spec']}` ({_short(models['base']['id'])}), candidate "
        f"`{models['candidate']['spec']}` ({_short(models['candidate']['id'])}); answers up to "
        f"{results['generation']['max_tokens']} tokens per turn.",
        f"- Judge `{judge['spec']}`: {judge['repeats']} judgment(s) per answer at temperature "
        f"{judge['temperature']:g}, up to {judge['max_tokens']} tokens"
        + (f"; each judgment prefilled with `{judge['prefill']}` (the judge writes the rating only, "
           "no explanation)" if judge["prefill"] else "")
        + ("; ratings are the expectation over the judge's probabilities of 1–10 (log-probabilities)."
           if judge["scoring"] == "logprob" else "; ratings are the `[[n]]` the judge wrote (no log-probabilities)."),
        *_trusted_by_name(results),
        f"- Δ = candidate − base; CI: {st['method']}, {st['resamples']:,} resamples, seed {results['seed']}, "
        f"{st['confidence'] * 100:g} %. Verdict *improved*/*regressed* only when the CI excludes 0; "
        f"*insufficient data* below {st['min_questions']} questions.",
        "",
        "| step | seconds | cached | tokens/s |", "|---|---|---|---|",
    ]
    for row in results["timings"]["steps"]:
        cached = {True: "yes", False: "no"}.get(row.get("cached"), "")
        lines.append(f"| {row['step']} | {row['seconds']:.1f} | {cached} | {row.get('tokens_per_s', '')} |")
    lines.append(f"| total | {results['timings']['total_seconds']:.1f} | | |")
    return "\n".join(lines) + "\n"
