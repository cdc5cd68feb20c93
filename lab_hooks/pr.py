"""`lab-hooks pr`: the whole PR loop, diff → validate → generate → train → evaluate → report.

    run = run_pr(PrOptions(repo=".", base="origin/main", head=sha, pr=12))
    run["status"], run["failure"], run["stages"]      # the plain dict the comment renders

The PR's content is data: leaves are read from git objects by sha (the diff) and
written as plain files into a private folder only so the validator can read
them; nothing of the PR is checked out, imported or executed, and the rules
come from the base side's config, not the PR's. Every stage is timed; the
first that fails stops the run and the report still says which stage and why.
Main's state comes from the store (lab_hooks.train.replay): ref `main/checkpoint`
(the student when unset) and `main/replay` (a record {"leaves": {leaf: SDG artifact key}}).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from lab_hooks import __version__
from lab_hooks.report.comment import render_comment
from lab_hooks.report.escape import log_safe
from lab_hooks.report.summary import annotations, findings_as_dicts, set_outputs, write_step_summary
from lab_hooks.sdg.policy import JUDGE_MODES

EMBEDDED = "embedded:smollm2-135m-instruct"
CONFIG_FILES = (".lab-hooks.yaml", "pyproject.toml")  # where a taxonomy repo's rules live
MAX_MATERIALIZED_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024


class StageFailed(Exception):
    """A stage's own verdict (bad leaves, nothing generated): the message is for the PR."""

    def __init__(self, message: str, findings: list[dict] | None = None):
        super().__init__(message)
        self.findings = findings or []


@dataclass
class PrOptions:
    repo: str = "."
    base: str = "origin/main"
    head: str = "HEAD"
    pr: int | None = None
    teacher: str = EMBEDDED
    student: str = EMBEDDED
    judge: str = EMBEDDED
    quick: int | None = None  # MT-Bench questions per category
    samples_per_seed: int = 3
    sdg_max_tokens: int | None = None
    sdg_judges: str = "auto"  # lab_hooks.sdg.policy: whether the teacher's judge steps filter
    seed: int = 0
    replay_ratio: float = 1.0
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    eval: dict = field(default_factory=dict)  # eval Settings overrides
    out_dir: str = "lab-hooks-out"
    lab_home: str | None = None
    progress: bool = True


class _Run:
    """The results dict being built, and the stage timer that fills `stages`."""

    def __init__(self, opts: PrOptions):
        self.opts = opts
        self.data: dict = {
            "status": "ok", "version": __version__, "pr": opts.pr,
            "base": {"ref": opts.base}, "head": {"ref": opts.head},
            "models": {"teacher": opts.teacher, "student": opts.student, "judge": opts.judge},
            "seeds": {"sdg": opts.seed, "train": opts.seed, "eval": opts.seed},
            "stages": [],
        }
        repo, server, run_id = (os.environ.get(k) for k in ("GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "GITHUB_RUN_ID"))
        if repo:
            self.data["repo"] = repo
            self.data["server_url"] = server or "https://github.com"
        if repo and run_id:
            self.data["artifacts_url"] = f"{self.data['server_url']}/{repo}/actions/runs/{run_id}"

    def stage(self, name: str, index: int, total: int, fn, *args):
        """Run one stage, timed; a failure is recorded and re-raised as _Stop."""
        self._progress(name, index, total)
        row = {"name": name, "status": "ok", "seconds": 0.0}
        self.data["stages"].append(row)
        start = time.perf_counter()
        try:
            result = fn(*args)
            if isinstance(result, tuple) and result and result[0] == "cached":
                row["status"], result = "cached", result[1]
            return result
        except StageFailed as e:
            self._fail(row, name, str(e), e.findings)
        except Exception as e:  # any crash is still reported on the PR, never a silent job failure
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self._fail(row, name, f"internal error: {detail}", [])
            traceback.print_exc(file=sys.stderr)
        finally:
            row["seconds"] = round(time.perf_counter() - start, 3)
        raise _Stop

    def _progress(self, name: str, index: int, total: int) -> None:
        """One bar over the stages (each stage's own work has its own bar below it)."""
        if not self.opts.progress:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # the core install: plain lines
            return _say(f"[{index}/{total}] {name}", True)
        if getattr(self, "bar", None) is None:
            self.bar = tqdm(total=total, desc="lab-hooks pr", unit="stage", file=sys.stderr, leave=True)
        self.bar.n = index - 1
        self.bar.set_postfix_str(name)

    def close(self) -> None:
        if getattr(self, "bar", None) is not None:
            self.bar.n = self.bar.total if self.data["status"] == "ok" else self.bar.n
            self.bar.close()

    def _fail(self, row: dict, name: str, reason: str, findings: list[dict]) -> None:
        row["status"] = "failed"
        self.data["status"] = "failed"
        self.data["failure"] = {"stage": name, "reason": reason, "findings": findings}


class _Stop(Exception):
    pass


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"lab-hooks pr {message}", file=sys.stderr, flush=True)


# -- stages ---------------------------------------------------------------------

def _diff(run: _Run):
    from lab_hooks.diff import diff_taxonomy

    opts = run.opts
    diff = diff_taxonomy(opts.repo, opts.base, opts.head)
    run.data["base"]["sha"] = diff.base
    run.data["head"]["sha"] = diff.head
    run.data["changed_leaves"] = [
        {"path": c.path, "change": c.status, "kind": c.kind.value if c.kind else None, "blob_sha": c.blob_sha,
         "old_path": c.old_path} for c in diff.leaves]
    run.data["skipped"] = [{"path": s.path, "reason": s.reason} for s in diff.skipped]
    return diff


def materialize(repo, head_sha: str, base_sha: str, dest: Path) -> Path:
    """The head tree's regular files under `dest`, as plain data; the base side's config.

    Symlinks and submodules are not written (the diff reports them); a file over
    the size limit is skipped; the total is bounded. Only the validator reads these.
    """
    total = 0
    for item in repo.commit(head_sha).tree.traverse():
        if item.type != "blob" or not stat.S_ISREG(item.mode) or item.size > MAX_FILE_BYTES:
            continue
        if item.path in CONFIG_FILES:
            continue
        total += item.size
        if total > MAX_MATERIALIZED_BYTES:
            raise StageFailed(f"the PR's tree is over {MAX_MATERIALIZED_BYTES // 2**20} MiB")
        target = dest / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.data_stream.read())
    base_tree = repo.commit(base_sha).tree
    for name in CONFIG_FILES:  # the rules are the base branch's, not what the PR says they are
        try:
            blob = base_tree / name
        except KeyError:
            continue
        if blob.type == "blob" and stat.S_ISREG(blob.mode):
            (dest / name).write_bytes(blob.data_stream.read())
    return dest


def _validate(run: _Run, diff, workdir: Path):
    from lab_hooks.checks.config import load_config
    from lab_hooks.checks.engine import check_files
    from lab_hooks.checks.registry import load_checks

    root = materialize(diff.repo, diff.head, diff.base, workdir / "taxonomy")
    files = [str(root / c.path) for c in diff.leaves if c.status != "deleted"]
    load_checks()
    report = check_files(files, root, load_config(root))
    findings = findings_as_dicts(report.findings)
    for f in findings:  # back to repository-relative paths for the comment's links
        f["file"] = os.path.relpath(f["file"], root) if os.path.isabs(f["file"]) else f["file"]
    run.data["validation"] = {"errors": report.errors, "warnings": len(findings) - report.errors}
    errors = [f for f in findings if f.get("severity") == "error"]
    if errors or report.internal_errors:
        raise StageFailed(f"{len(errors)} error(s) in the changed leaves; fix them and push again"
                          + (f" ({len(report.internal_errors)} internal error(s))" if report.internal_errors else ""),
                          errors)
    leaves = []
    for change in diff.leaves:
        if change.status != "deleted":
            leaves.append(diff.read_leaf(change))
    return root, leaves


def _generate(run: _Run, leaves, root: Path, store, out: Path):
    from lab_hooks.sdg import generate_leaves
    from lab_hooks.sdg.policy import examples

    opts = run.opts
    result = generate_leaves(leaves, opts.teacher, store, out_dir=out / "sdg", samples_per_seed=opts.samples_per_seed,
                             seed=opts.seed, max_tokens=opts.sdg_max_tokens, judges=opts.sdg_judges,
                             taxonomy_root=root, progress=opts.progress)
    rows = []
    for r in result.leaves:
        steps = r.stats.get("steps", {})
        dropped = {name: st["candidates"] - st["passed"] for name, st in steps.items()
                   if st.get("candidates", 0) > st.get("passed", 0)}
        rows.append({"leaf": r.leaf, "candidates": r.candidates, "accepted": r.accepted, "dropped": dropped,
                     "status": "ok" if r.ok else (r.message or r.status), "artifact": r.artifact,
                     "judges": r.stats.get("judges"), "examples": examples(r.records)})
    run.data["generation"] = {"teacher": opts.teacher, "leaves": rows, "teacher_calls": result.calls}
    if not any(r.ok for r in result.leaves):
        raise StageFailed("no changed leaf produced any accepted sample: "
                          + "; ".join(f"{r.leaf}: {r.message or r.status}" for r in result.leaves))
    return ("cached", result) if result.calls == 0 else result


def served_spec(student: str, checkpoint: Path) -> str:
    """Serve a trained checkpoint the way the student is served (vLLM stays vLLM)."""
    return f"{'vllm' if student.startswith('vllm:') else 'hf'}:{checkpoint}"


def leaf_name(path: str) -> str:
    from lab_hooks.taxonomy.leaf import taxonomy_path

    return os.path.dirname(taxonomy_path(path)[0])


def leaf_names(changes: list[dict], statuses: tuple[str, ...]) -> set[str]:
    return {leaf_name(c["path"]) for c in changes if c["change"] in statuses}


def removed_leaves(changes: list[dict]) -> set[str]:
    """Leaves whose old samples must leave the replay side: modified, deleted, renamed-from."""
    return leaf_names(changes, ("modified", "deleted")) | {leaf_name(c["old_path"]) for c in changes
                                                          if c.get("old_path")}


def train_stage(run: _Run, gen, store):
    """Phase 2 (phase 1 first for knowledge) from main's checkpoint with replay from main's buffer."""
    from lab_hooks.train.cli import student_dir
    from lab_hooks.train.loop import TrainConfig
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import CHECKPOINT_REF, buffer_leaves, load_buffer, read_jsonl

    opts = run.opts
    main_key = store.get_ref(CHECKPOINT_REF)
    buffer = buffer_leaves(store)
    changed = {r.leaf: read_jsonl(r.dataset) for r in gen.leaves if r.ok}
    config = TrainConfig(**{"seed": opts.seed, "progress": opts.progress, **opts.train})
    before = {a.key for a in store.artifacts("checkpoint")}
    key, checkpoint, summary = train_candidate(
        store, load_buffer(store), changed, removed_leaves(run.data["changed_leaves"]), student_dir(opts.student),
        config, replay_ratio=opts.replay_ratio)
    if key is None:
        raise StageFailed("nothing to train: the changed leaves produced no phase-2 samples")
    run.data["training"] = {
        "method": config.method, "parent": main_key[:12] if main_key else opts.student,
        "replay_buffer_leaves": len(buffer),
        "phases": [{k: p.get(k) for k in ("phase", "new_samples", "replay_samples", "replay_ratio", "steps",
                                          "loss_first", "loss_last", "dropped", "tokens_per_s", "wall_s")}
                   for p in summary["phases"]]}
    run.data["models"]["base_checkpoint"] = main_key or opts.student
    run.data["models"]["candidate_checkpoint"] = key
    base_spec = served_spec(opts.student, store.get(main_key)) if main_key else opts.student
    result = (base_spec, served_spec(opts.student, checkpoint), key, buffer)
    return ("cached", result) if key in before else result


def _evaluate(run: _Run, trained, leaves, root: Path, store):
    from lab_hooks.checks.engine import expand
    from lab_hooks.eval import Settings, evaluate
    from lab_hooks.taxonomy.load import LeafError, load_leaf_file

    base_spec, candidate_spec, candidate_key, _ = trained
    opts = run.opts
    changed_names = {leaf.name for leaf in leaves}
    unchanged = []
    for file in expand([str(root)]):
        try:
            leaf = load_leaf_file(file)
        except LeafError:
            continue  # an unchanged leaf main already holds; the validator is not asked about it here
        if leaf.name not in changed_names:
            unchanged.append(leaf)
    settings = Settings(**{"seed": opts.seed, "quick": opts.quick, **opts.eval})
    # Checkpoints the store holds are known by their keys: no need to hash their files again.
    ids = {"candidate": candidate_key}
    if run.data["models"]["base_checkpoint"] != opts.student:  # main's checkpoint, not the untrained student
        ids["base"] = run.data["models"]["base_checkpoint"]
    results = evaluate(base=base_spec, candidate=candidate_spec, judge=opts.judge, changed_leaves=leaves,
                       store=store, new_leaves=leaf_names(run.data["changed_leaves"], ("added",)),
                       unchanged_leaves=unchanged, settings=settings, ids=ids)
    run.data["eval_results"] = results
    run.data.update(eval_summary(results))
    steps = [row for row in results["timings"]["steps"] if "cached" in row]
    return ("cached", results) if steps and all(row["cached"] for row in steps) else results


def judge_error_rate(errors: dict) -> float | None:
    """Unparseable judgments over all judgments, both models together (None: none made)."""
    judged = sum(e.get("judgments", 0) for e in errors.values())
    return sum(e.get("errors", 0) for e in errors.values()) / judged if judged else None


def eval_summary(results: dict) -> dict:
    """The comment's `mtbench` and `branch` sections from lab_hooks.eval's results JSON."""
    out = {}
    mt = results.get("mtbench")
    if mt:
        judge = results.get("judge") or {}
        out["mtbench"] = {"overall": mt["overall"], "categories": mt.get("categories", {}),
                          "quick": (mt.get("subset") or {}).get("quick"),
                          "judge_error_rate": judge_error_rate(mt.get("errors", {})),
                          "smoke_judge": judge.get("smoke_test", False), "judge_prefill": judge.get("prefill")}
    branch = results.get("branch")
    if branch:
        out["branch"] = {"leaves": branch.get("leaves", []), "judge_error_rate": judge_error_rate(branch.get("errors", {}))}
    return out


# -- the run ------------------------------------------------------------------

def run_pr(opts: PrOptions, store=None) -> dict:
    """Run the loop; returns the results dict (status ok or failed, never raises for a stage)."""
    from lab_hooks.store import Store

    if opts.lab_home:
        os.environ["LAB_HOME"] = opts.lab_home
    run = _Run(opts)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lab-hooks-pr-"))
    store = store if store is not None else Store()
    try:
        with store.run("pr", {"pr": opts.pr, "base": opts.base, "head": opts.head}):  # no gc meanwhile
            _stages(run, store, out, workdir)
    except _Stop:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        run.close()
    return run.data


def _stages(run: _Run, store, out: Path, workdir: Path) -> None:
    total = 6
    diff = run.stage("diff", 1, total, _diff, run)
    if not diff.leaves:
        return _say("no taxonomy leaf changed: nothing to train", run.opts.progress)
    root, leaves = run.stage("validate", 2, total, _validate, run, diff, workdir)
    if not leaves:
        return _say("the PR only deletes leaves: promotion drops them from the replay buffer", run.opts.progress)
    gen = run.stage("generate", 3, total, _generate, run, leaves, root, store, out)
    trained = run.stage("train", 4, total, train_stage, run, gen, store)
    run.stage("evaluate", 5, total, _evaluate, run, trained, leaves, root, store)
    from lab_hooks.promote import remember_run  # promote imports this module

    remember_run(store, diff, run.data, trained)


def write_report(run: dict, out_dir: Path, progress: bool = True) -> str:
    """results.json + comment.md in `out_dir`, the job summary and step outputs; the comment."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not run.get("artifacts_url"):  # a local run: the reader has the files right here
        run["results_dir"] = str(out_dir)
    run["stages"].append({"name": "report", "status": "ok", "seconds": round(time.perf_counter() - start, 3)})
    comment = render_comment(run)
    (out_dir / "results.json").write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "comment.md").write_text(comment, encoding="utf-8")
    write_step_summary(comment)
    overall = (run.get("mtbench") or {}).get("overall") or {}
    set_outputs({"overall-delta": "" if overall.get("delta") is None else str(overall["delta"]),
                 "verdict": "failed" if run["status"] != "ok" else str(overall.get("verdict") or "")})
    if os.environ.get("GITHUB_ACTIONS"):
        for line in annotations((run.get("failure") or {}).get("findings") or []):
            print(line)
    _say(f"wrote {out_dir / 'results.json'} and {out_dir / 'comment.md'}", progress)
    return comment


def at_least(low: int):
    """An argparse type: an integer >= low (a zero token budget is a usage error, not a crash later)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab-hooks pr", description="Run the PR loop: diff, validate, generate, "
                                "train (phase 2 with replay; phase 1 for knowledge), evaluate, report.")
    p.add_argument("--base", required=True, help="the branch the PR merges into (merge-base semantics)")
    p.add_argument("--head", required=True, help="the PR head (ref or sha; read as git objects)")
    p.add_argument("--pr", type=int, help="PR number: post the sticky comment (needs $GITHUB_TOKEN)")
    p.add_argument("--dry-run", action="store_true", help="post nothing; print the comment")
    p.add_argument("--repo", default=".", help="the taxonomy git repository (default: .)")
    p.add_argument("--teacher", default=EMBEDDED)
    p.add_argument("--student", default=EMBEDDED)
    p.add_argument("--judge", default=EMBEDDED)
    p.add_argument("--quick", type=at_least(1), help="MT-Bench questions per category (default: all 80 questions)")
    p.add_argument("--samples-per-seed", type=at_least(1), default=3)
    p.add_argument("--replay-ratio", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("full", "lora"), default="full")
    p.add_argument("--max-steps", type=at_least(1), help="cap the optimizer steps per phase")
    p.add_argument("--sdg-max-tokens", type=at_least(1), help="teacher tokens per generation (default: the pipeline's)")
    p.add_argument("--sdg-judges", choices=JUDGE_MODES, default="auto",
                   help="whether the teacher's judge steps filter samples: auto (not when the teacher is too small "
                        "to judge; its verdicts are then recorded only), apply, record")
    p.add_argument("--answer-max-tokens", type=at_least(1), help="MT-Bench answer tokens per turn (default 1024)")
    p.add_argument("--judge-max-tokens", type=at_least(1), help="judge tokens per judgment (default 2048)")
    p.add_argument("--unchanged-leaves", type=at_least(0),
                   help="unchanged skill leaves the branch eval also asks, to catch regressions elsewhere (default 3)")
    p.add_argument("--out", default="lab-hooks-out", help="folder for results.json, comment.md and the data")
    p.add_argument("--results", help="where to write results.json (default: OUT/results.json)")
    p.add_argument("--no-progress", action="store_true")
    return p


def train_settings(args: argparse.Namespace) -> dict:
    """The training options `pr` and `promote` share, from their parsed flags."""
    return {"method": args.method, **({"max_steps": args.max_steps} if args.max_steps else {})}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    out = Path(args.results).parent if args.results else Path(args.out)
    train = train_settings(args)
    evaluation = {k: v for k, v in (("max_tokens", args.answer_max_tokens), ("judge_max_tokens", args.judge_max_tokens),
                                    ("unchanged_sample", args.unchanged_leaves)) if v is not None}
    opts = PrOptions(repo=args.repo, base=args.base, head=args.head, pr=args.pr, teacher=args.teacher,
                     student=args.student, judge=args.judge, quick=args.quick,
                     samples_per_seed=args.samples_per_seed, sdg_max_tokens=args.sdg_max_tokens,
                     sdg_judges=args.sdg_judges, seed=args.seed,
                     replay_ratio=args.replay_ratio, train=train, eval=evaluation, out_dir=str(out),
                     progress=not args.no_progress)
    run = run_pr(opts)
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
