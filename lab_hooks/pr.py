"""`lab-hooks pr`: the PR loop from the command line (the loop itself is lab_hooks.loop)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lab_hooks.flags import (Parser, add_min_effect_flags, add_model_flags, add_replay_flag, add_train_flags,
                             at_least, command, train_config)
from lab_hooks.loop.pr import run_pr
from lab_hooks.loop.report import write_report
from lab_hooks.loop.run import PrOptions
from lab_hooks.report.escape import log_safe
from lab_hooks.report.summary import set_outputs
from lab_hooks.sdg.policy import JUDGE_MODES


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks pr", description="Run the PR loop: diff, validate, generate, "
                                "train (phase 2 with replay; phase 1 for knowledge), evaluate, report.")
    p.add_argument("--base", required=True, help="the branch the PR merges into (merge-base semantics)")
    p.add_argument("--head", required=True, help="the PR head (ref or sha; read as git objects)")
    p.add_argument("--pr", type=int, help="PR number: post the sticky comment (needs $GITHUB_TOKEN)")
    p.add_argument("--dry-run", action="store_true", help="post nothing; print the comment")
    p.add_argument("--repo", default=".", help="the taxonomy git repository (default: .)")
    add_model_flags(p, judge=True)
    p.add_argument("--samples-per-seed", type=at_least(1), default=PrOptions.samples_per_seed)
    p.add_argument("--quick", type=at_least(1), help="MT-Bench questions per category (default: all 80 questions)")
    add_replay_flag(p)
    p.add_argument("--sdg-max-tokens", type=at_least(1), help="teacher tokens per generation (default: the pipeline's)")
    p.add_argument("--sdg-judges", choices=JUDGE_MODES, default="auto",
                   help="whether the teacher's judge steps filter samples: auto (not when the teacher is too small "
                        "to judge; its verdicts are then recorded only), apply, record")
    p.add_argument("--answer-max-tokens", type=at_least(1), help="MT-Bench answer tokens per turn (default 1024)")
    p.add_argument("--judge-max-tokens", type=at_least(1), help="judge tokens per judgment (default 2048)")
    p.add_argument("--unchanged-leaves", type=at_least(0),
                   help="unchanged leaves evaluated too, the controls that catch regressions elsewhere (default 3)")
    p.add_argument("--calibration-questions", type=at_least(1),
                   help="MT-Bench references (each with 4 degraded answers) the judge must tell apart (default 10)")
    add_min_effect_flags(p)
    p.add_argument("--pairwise", action="store_true", help="also judge base vs candidate side by side, both orders")
    p.add_argument("--no-branch-judge", action="store_true",
                   help="no judged branch eval (the reference NLL of the leaves is measured either way)")
    p.add_argument("--out", default=PrOptions.out_dir,
                   help=f"folder for results.json, comment.md and the data (default {PrOptions.out_dir})")
    p.add_argument("--results", help="where to write results.json (default: OUT/results.json)")
    p.add_argument("--no-progress", action="store_true")
    add_train_flags(p)
    return p


def options(args: argparse.Namespace) -> PrOptions:
    """The loop's options from the parsed flags."""
    out = Path(args.results).parent if args.results else Path(args.out)
    evaluation = {k: v for k, v in (("max_tokens", args.answer_max_tokens), ("judge_max_tokens", args.judge_max_tokens),
                                    ("unchanged_sample", args.unchanged_leaves),
                                    ("calibration_questions", args.calibration_questions),
                                    ("min_effect", args.min_effect),
                                    ("min_effect_controls", args.min_effect_controls)) if v is not None}
    evaluation.update({"pairwise": True} if args.pairwise else {})
    evaluation.update({"branch_judge": False} if args.no_branch_judge else {})
    config = train_config(args, progress=not args.no_progress)
    return PrOptions(repo=args.repo, base=args.base, head=args.head, pr=args.pr, teacher=args.teacher,
                     student=args.student, judge=args.judge, quick=args.quick, samples_per_seed=args.samples_per_seed,
                     sdg_max_tokens=args.sdg_max_tokens, sdg_judges=args.sdg_judges, seed=config.seed,
                     replay_ratio=args.replay_ratio, train=config, eval=evaluation, out_dir=str(out), progress=not args.no_progress)


@command("lab-hooks pr")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = options(args)
    run = run_pr(opts)
    out = Path(opts.out_dir)
    comment = write_report(run, out, opts.progress)
    if args.dry_run:
        print(log_safe(comment))
    elif args.pr is not None:
        from lab_hooks.report.publish import post

        token, repo = os.environ.get("GITHUB_TOKEN", ""), run.get("repo")
        if token and repo:
            try:
                url = post(run, args.pr, repo, token, os.environ.get("GITHUB_API_URL", "https://api.github.com"))
                set_outputs({"comment-url": url})
                print(f"lab-hooks pr: comment {url}")
            except Exception as e:  # the run's results stand; only the posting failed
                print(f"lab-hooks pr: could not post the comment: {log_safe(e)}", file=sys.stderr)
                return 1
    if run["status"] != "ok":
        failure = run.get("failure") or {}
        print(log_safe(f"lab-hooks pr: stage {failure.get('stage')} failed: {failure.get('reason')}"), file=sys.stderr)
        return 1
    return 0
