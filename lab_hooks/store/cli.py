"""`lab-hooks store ls|verify|gc`: look after the run store."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from dataclasses import asdict

from lab_hooks.store.store import DEFAULT_KEEP_DAYS, Store, StoreBusy, StoreError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _ls(store: Store, args: argparse.Namespace) -> int:
    refs_by_key: dict[str, list[str]] = {}
    for name, key in store.refs().items():
        refs_by_key.setdefault(key, []).append(name)
    arts = store.artifacts(args.kind)
    if args.format == "json":
        out = {
            "artifacts": [{**asdict(a), "path": str(a.path), "refs": refs_by_key.get(a.key, [])} for a in arts],
            "refs": store.refs(),
            "records": store.record_count(),
        }
        print(json.dumps(out, indent=2))
        return 0
    for a in arts:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(a.created))
        names = f"  <- {', '.join(refs_by_key[a.key])}" if a.key in refs_by_key else ""
        print(f"{a.key[:12]}  {a.kind:<12} {when}  {a.nfiles:>5} files {_size(a.size):>10}{names}")
    total = sum(a.size for a in arts)
    print(f"{len(arts)} artifacts, {_size(total)}; {store.record_count():,} records; "
          f"{len(store.refs())} refs; store at {store.home}")
    return 0


def _verify(store: Store, args: argparse.Namespace) -> int:
    problems = store.verify()
    for p in problems:
        print(f"{store.home}: {p}")
    if args.fix:
        for key in sorted({p.key for p in problems if store.info(p.key)}):
            if store.remove(key):
                print(f"removed {key[:12]}: it is rebuilt on next use")
    garbage = store.garbage()
    if garbage:
        print(f"{len(garbage)} unfinished directories (crashed builds); `lab-hooks store gc` removes them")
    n = len(store.artifacts())
    print(f"{n} artifacts verified, {len(problems)} problems")
    return 1 if problems else 0


def _gc(store: Store, args: argparse.Namespace) -> int:
    try:
        report = store.gc(keep_days=args.keep_days, dry_run=args.dry_run)
    except StoreBusy as exc:  # not an error of the store: a job runs; a cron gc tries again later
        print(f"lab-hooks store: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    for key in report.artifacts:
        print(f"{verb} artifact {key[:12]}")
    for path in report.garbage_dirs:
        print(f"{verb} unfinished {path}")
    print(f"{verb} {len(report.artifacts)} artifacts, {report.records} records, {report.runs} runs, "
          f"{len(report.garbage_dirs)} unfinished dirs; freed {_size(report.freed_bytes)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab-hooks store", description=__doc__)
    parser.add_argument("--home", help="store directory (default: $LAB_HOME/store)")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list artifacts and the refs naming them")
    ls.add_argument("--kind", help="only artifacts of this kind")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    verify = sub.add_parser("verify", help="re-hash every file against the manifest")
    verify.add_argument("--fix", action="store_true", help="remove corrupt artifacts so they are rebuilt")
    gc = sub.add_parser("gc", help="delete what no ref or recent run uses")
    gc.add_argument("--keep-days", type=float, default=DEFAULT_KEEP_DAYS,
                    help=f"keep what runs of the last N days used or made (default {DEFAULT_KEEP_DAYS:g})")
    gc.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    try:
        store = Store(args.home)
        return {"ls": _ls, "verify": _verify, "gc": _gc}[args.command](store, args)
    except (StoreError, sqlite3.DatabaseError, OSError) as exc:
        print(f"lab-hooks store: {exc}", file=sys.stderr)
        return 2
