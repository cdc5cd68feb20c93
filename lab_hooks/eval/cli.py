"""`lab-hooks eval`: MT-Bench and branch evaluation of a candidate against a base model."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from lab_hooks.flags import Parser, add_min_effect_flags, add_seed_flag, alias, command
from lab_hooks.models.specs import EMBEDDED_SPEC as DEFAULT_JUDGE


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks eval", description=__doc__)
    p.add_argument("--base-model", required=True, metavar="SPEC", help="the model the PR starts from")
    p.add_argument("--candidate", required=True, metavar="SPEC", help="the model trained on the PR")
    p.add_argument("--judge", default=DEFAULT_JUDGE, metavar="SPEC",
                   help=f"judge model (default {DEFAULT_JUDGE}, a smoke-test judge only)")
    p.add_argument("--branch-leaves", nargs="*", default=[], metavar="QNA", help="changed qna.yaml files")
    p.add_argument("--new-leaves", nargs="*", default=[], metavar="QNA", help="qna.yaml files the PR adds")
    p.add_argument("--base", metavar="REF",
                   help="instead of listing leaves: evaluate those changed since REF in --repo (merge-base)")
    p.add_argument("--head", metavar="REF", help="with --base (default: the working tree)")
    p.add_argument("--repo", type=Path, metavar="DIR",
                   help="the taxonomy (default . with --base); unchanged skill leaves are sampled from it "
                        "as regression controls")
    p.add_argument("--root", default="", metavar="SUBDIR", help="the taxonomy's folder in --repo")
    alias(p, "--git-base", "base")
    alias(p, "--git-head", "head")
    alias(p, "--taxonomy", "repo", type=Path)
    alias(p, "--taxonomy-root", "root")
    p.add_argument("--unchanged-sample", type=int, default=3, metavar="N", help="unchanged leaves to ask (default 3)")
    p.add_argument("--no-mtbench", action="store_true", help="branch evaluation only")
    p.add_argument("--quick", type=int, metavar="N", help="only N MT-Bench questions per category")
    p.add_argument("--judge-repeats", type=int, default=1, metavar="K", help="judgments per answer (judge noise)")
    p.add_argument("--judge-temperature", type=float, metavar="T",
                   help="default 0, or 0.7 with --judge-repeats > 1")
    p.add_argument("--judge-prefill", action=argparse.BooleanOptionalAction,
                   help="start each judgment with 'Rating: [[' so the judge writes only the number "
                        "(default: on for the embedded smoke-test judge, off for others, which explain first)")
    p.add_argument("--pairwise", action="store_true",
                   help="also judge base vs candidate MT-Bench answers side by side, in both orders")
    p.add_argument("--calibration-questions", type=int, default=10, metavar="N",
                   help="MT-Bench references (each with 4 degraded answers) the judge must tell apart (default 10)")
    p.add_argument("--no-judge-logprobs", action="store_true",
                   help="use the [[n]] the judge writes even where its backend reports log-probabilities")
    p.add_argument("--max-tokens", type=int, default=1024, metavar="N", help="per answer turn (default 1024)")
    p.add_argument("--judge-max-tokens", type=int, default=2048, metavar="N", help="per judgment (default 2048)")
    p.add_argument("--resamples", type=int, default=10_000, metavar="B", help="bootstrap resamples (default 10000)")
    add_min_effect_flags(p)
    add_seed_flag(p, "answer sampling and bootstrap seed")
    p.add_argument("--store", type=Path, metavar="DIR", help="cache store (default LAB_HOME/store)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached answers/judgments")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="what is printed: the markdown report (text, the default) or the results JSON")
    p.add_argument("--results", type=Path, metavar="FILE",
                   help="also write the results JSON here (docs/eval-results.md), as `lab-hooks pr --results` does")
    alias(p, "--json", "results", type=Path)
    p.add_argument("--markdown", type=Path, help=argparse.SUPPRESS)  # old: the report to FILE, not stdout
    return p


def _positive(args: argparse.Namespace) -> str | None:
    for name in ("quick", "judge_repeats", "max_tokens", "judge_max_tokens", "resamples", "calibration_questions"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {value}"
    if args.judge_temperature is not None and args.judge_temperature < 0:
        return f"--judge-temperature must not be negative, got {args.judge_temperature}"
    if args.unchanged_sample < 0:
        return f"--unchanged-sample must not be negative, got {args.unchanged_sample}"
    if args.resamples < 1000:
        return f"--resamples {args.resamples} is too few for a 95 % CI (use at least 1000)"
    if args.base and (args.branch_leaves or args.new_leaves):
        return "--base finds the leaves itself: drop --branch-leaves/--new-leaves"
    if args.head and not args.base:
        return "--head needs --base"
    if args.no_mtbench and not (args.branch_leaves or args.new_leaves or args.base):
        return "--no-mtbench leaves nothing to evaluate: give --branch-leaves, --new-leaves or --base"
    return None


@command("lab-hooks eval")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = _positive(args)
    if problem:
        print(f"lab-hooks eval: {problem}", file=sys.stderr)
        return 2
    from lab_hooks.eval import leaves
    from lab_hooks.eval.render import render
    from lab_hooks.eval.run import Settings, evaluate
    from lab_hooks.models import parse_spec

    for spec in (args.base_model, args.candidate, args.judge):
        parse_spec(spec)  # now, not after an hour of generating with the others
    if args.base:
        branch = leaves.from_git(args.repo or Path("."), args.base, args.head, args.root)
    else:
        new = leaves.load_files(args.new_leaves)
        changed = leaves.load_files(args.branch_leaves) + new
        branch = leaves.BranchLeaves(changed, frozenset(leaf.name for leaf in new), leaves.load_tree(
            args.repo / args.root, {leaf.name for leaf in changed}) if args.repo else [])
    store = None
    if not args.no_cache:
        from lab_hooks.store import Store

        store = Store(args.store)
    settings = Settings(seed=args.seed, quick=args.quick, max_tokens=args.max_tokens,
                        judge_max_tokens=args.judge_max_tokens, judge_repeats=args.judge_repeats,
                        judge_temperature=args.judge_temperature, judge_prefill=args.judge_prefill,
                        unchanged_sample=args.unchanged_sample, resamples=args.resamples,
                        pairwise=args.pairwise, calibration_questions=args.calibration_questions,
                        judge_logprobs=not args.no_judge_logprobs,
                        **{k: getattr(args, k) for k in ("min_effect", "min_effect_controls")
                           if getattr(args, k) is not None})
    job = store.run("eval", {"base": args.base_model, "candidate": args.candidate}) if store else nullcontext()
    with job:  # no gc meanwhile
        results = evaluate(args.base_model, args.candidate, args.judge, branch.changed, store,
                           new_leaves=branch.new, unchanged_leaves=branch.unchanged,
                           settings=settings, mtbench=not args.no_mtbench)
    as_json = json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    if args.results:
        args.results.write_text(as_json, encoding="utf-8")
    if args.markdown:  # the old spelling: the report goes there instead of stdout
        args.markdown.write_text(render(results), encoding="utf-8")
    if args.format == "json":
        sys.stdout.write(as_json)
    elif not args.markdown:
        sys.stdout.write(render(results))
    return 0
