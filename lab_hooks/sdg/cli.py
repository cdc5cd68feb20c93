"""`lab-hooks generate` and `lab-hooks preview`: synthetic data for leaves, from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lab_hooks.errors import InputError
from lab_hooks.flags import GENERATED, Parser, add_model_flags, add_seed_flag, alias, at_least, command
from lab_hooks.sdg.documents import GitTree
from lab_hooks.sdg.generate import GenerateResult, LeafResult, MixConfig
from lab_hooks.sdg.policy import JUDGE_MODES


def _load_leaves(paths: list[str], root: Path) -> list:
    """The named leaves; InputError at the first that cannot be read (file:line:col)."""
    from lab_hooks.taxonomy.load import LeafError, load_leaf_file

    leaves = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "qna.yaml"
        try:
            leaves.append(load_leaf_file(path, root))
        except LeafError as exc:
            raise InputError(f"{path}:{exc.pos[0]}:{exc.pos[1]}: {exc.code} {exc.message}") from None
    return leaves


def _changed_leaves(repo: Path, base: str, head: str | None) -> tuple[list, GitTree | None]:
    """The leaves added, modified or renamed on head since it forked from base (read from blobs),
    and, with a head commit, that commit's tree: their in-repo documents are read from it."""
    from lab_hooks.diff import diff_taxonomy

    changes = diff_taxonomy(repo, base, head)
    return changes.read_all(), GitTree(changes.repo, changes.head) if changes.head else None


def _summary(r: LeafResult) -> str:
    judges = r.stats.get("judges") or {"applied": True}
    note = "" if judges["applied"] else f"\n       judge filtering not applied: {judges['reason']}"
    if r.status == "ok":
        tokens = sum(r.stats["teacher_tokens"].values())
        return (f"ok     {r.leaf}: {r.accepted} accepted of {r.candidates} candidates "
                f"({100 * r.stats['acceptance_rate']:.1f}%), {tokens} teacher tokens{note}")
    if r.status == "empty":
        return f"EMPTY  {r.leaf}: {r.message}{note}"
    return f"ERROR  {r.leaf}: {r.message}"


def _report(result: GenerateResult, out: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "leaves": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.__dict__.items()} for r in result.leaves],
            "mixes": {k: str(v) for k, v in result.mixes.items()},
            "teacher_calls": result.calls, "seconds": round(result.seconds, 3),
        }, indent=2))
        return
    for r in result.leaves:
        print(_summary(r))
    for kind, path in result.mixes.items():
        print(f"{kind} mix: {path} (recipe {result.recipes[kind].name})")
    print(f"{len(result.leaves)} leaves, {result.calls} teacher calls this run, {result.seconds:.1f} s -> {out}")


def _run(leaves: list, args, out: Path, *, progress: bool, mix: MixConfig | None = None,
         tree: GitTree | None = None) -> GenerateResult:
    from lab_hooks.sdg.generate import generate_leaves
    from lab_hooks.store import Store

    store = Store()
    try:
        with store.run("generate", {"leaves": [leaf.name for leaf in leaves], "teacher": args.teacher}):  # no gc meanwhile
            return generate_leaves(
                leaves, args.teacher, store, out_dir=out, samples_per_seed=args.samples_per_seed, seed=args.seed,
                max_tokens=args.max_tokens, batch_size=args.batch_size, judges=args.judges,
                taxonomy_root=Path(args.repo).resolve(),
                tree=tree, mix_config=mix, progress=progress,
            )
    finally:
        store.close()


def _common(p: argparse.ArgumentParser, samples: int) -> None:
    add_model_flags(p, student=False)
    p.add_argument("--samples-per-seed", type=at_least(1), default=samples, metavar="N")
    add_seed_flag(p, "sampling seed (same seed, same data)")
    p.add_argument("--max-tokens", type=at_least(1), default=None, metavar="N", help="cap every step's max_tokens")
    p.add_argument("--batch-size", type=at_least(1), default=None, metavar="N",
                   help="conversations per teacher call (default: the pipeline's)")
    p.add_argument("--repo", default=".", metavar="DIR", help="the taxonomy (its git repository; default: .)")
    alias(p, "--taxonomy", "repo")
    p.add_argument("--judges", choices=JUDGE_MODES, default="auto",
                   help="whether judge steps filter: auto (unless the teacher is too small to judge), apply, record")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks generate", description="Synthetic data for changed or given leaves.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", metavar="REF", help="generate for the leaves changed since REF (merge-base)")
    which.add_argument("--leaf", nargs="+", metavar="PATH", help="qna.yaml files (or their directories)")
    p.add_argument("--head", metavar="REF", help="with --base: the PR head (default: the working tree)")
    p.add_argument("--out", default=GENERATED, metavar="DIR", help=f"output directory (default {GENERATED})")
    p.add_argument("--skills-ratio", type=float, default=1.0, help="mix: samples per skills leaf = ratio x accepted")
    p.add_argument("--knowledge-ratio", type=float, default=1.0)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-progress", action="store_true")
    _common(p, 5)
    return p


@command("lab-hooks generate")
def main(argv: list[str]) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.head and not args.base:
        p.error("--head needs --base")
    if min(args.skills_ratio, args.knowledge_ratio) < 0:
        p.error("ratios must be >= 0")
    root = Path(args.repo)
    leaves, tree = _changed_leaves(root, args.base, args.head) if args.base else (_load_leaves(args.leaf, root), None)
    if not leaves:
        print("no changed leaves")
        return 0
    out = Path(args.out)
    result = _run(leaves, args, out, progress=not args.no_progress,
                  mix=MixConfig(skills_ratio=args.skills_ratio, knowledge_ratio=args.knowledge_ratio), tree=tree)
    _report(result, out, args.format == "json")
    return result.exit_code


@command("lab-hooks preview")
def preview(argv: list[str]) -> int:
    """A few samples for one leaf on the embedded model, with why the others were dropped."""
    p = Parser(prog="lab-hooks preview", description="A quick local look at generated samples for one leaf.")
    p.add_argument("path", help="the leaf's qna.yaml (or its directory)")
    p.add_argument("--seeds", type=int, default=2, help="use only the first N seeds (default 2)")
    _common(p, 2)
    p.set_defaults(max_tokens=48)
    args = p.parse_args(argv)
    leaves = _load_leaves([args.path], Path(args.repo))
    import dataclasses
    import tempfile

    leaf = leaves[0]
    leaf = dataclasses.replace(leaf, examples=_first_seeds(leaf, args.seeds))
    with tempfile.TemporaryDirectory(prefix="lab-hooks-preview-") as tmp:
        result = _run([leaf], args, Path(tmp), progress=sys.stderr.isatty())
        r = result.leaves[0]
        print(_summary(r))
        if r.records is not None:
            for line in r.records.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                print(f"\n--- sample {rec['unit']}: {rec['status']}"
                      + (f" by {rec['dropped_by']}" if rec["dropped_by"] else ""))
                for key in ("context", "question", "answer"):
                    if key in rec["fields"]:
                        print(f"{key}: {rec['fields'][key]}")
                for t in rec["trace"]:
                    if "score" in t or t["verdict"] != "kept":
                        detail = t.get("reason") or t.get("raw", "").strip().replace("\n", " ")[:80]
                        unapplied = " (not applied)" if t.get("applied") is False else ""
                        print(f"  {t['step']}: {t['verdict']}{unapplied} {t.get('score', '')} {detail!r}")
    return 0 if r.ok else 1


def _first_seeds(leaf, n: int) -> tuple:
    """The examples of the first `n` seeds (knowledge: of the first n contexts)."""
    if leaf.contexts and leaf.kind and not leaf.kind.is_skill:
        keep = set(leaf.contexts[:n])
        return tuple(e for e in leaf.examples if e.context in keep)
    return leaf.examples[:n]
