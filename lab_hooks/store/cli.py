"""`lab-hooks store ls|verify|gc|ref|migrate`: look after the run store.

The store is `--home DIR` (a local SQLite store), `--url URL`, or else
$LAB_STORE_URL, else LAB_HOME/store (docs/runners.md).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from dataclasses import asdict
from pathlib import Path

from lab_hooks.errors import InputError
from lab_hooks.flags import Parser, command
from lab_hooks.store.manifest import redact
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
          f"{len(store.refs())} refs; store at {store.db.where}")
    return 0


def _verify(store: Store, args: argparse.Namespace) -> int:
    problems = store.verify()
    for p in problems:
        print(f"{store.db.where}: {p}")
    if args.fix:
        named: dict[str, list[str]] = {}
        for name, key in store.refs().items():
            named.setdefault(key, []).append(name)
        for key in sorted({p.key for p in problems if store.info(p.key)}):
            if key in named:  # removing it would break every later job that reads the ref
                refs = ", ".join(named[key])
                print(f"kept {key[:12]}: ref {refs} names it; restore it from a backup, or rebuild it after "
                      f"`lab-hooks store ref rm {refs.split(', ')[0]}` and another `verify --fix`")
            elif store.remove(key):
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


def _ref(store: Store, args: argparse.Namespace) -> int:
    if args.ref_command == "ls":
        for name, key in store.refs(args.prefix).items():
            print(f"{name}  {key}")
        return 0
    if args.ref_command == "rm":
        missing = [n for n in args.names if store.get_ref(n) is None]
        if missing:
            print(f"lab-hooks store: no ref {missing[0]}", file=sys.stderr)
            return 1
        store.delete_refs(*args.names)
        print(f"deleted {', '.join(args.names)}")
        return 0
    key = store.resolve(args.key)
    expect = None
    if args.expect is not None:
        expect = {args.name: None if args.expect == "none" else store.resolve(args.expect)}
    store.set_refs({args.name: key}, expect=expect)
    print(f"{args.name} -> {key}")
    return 0


def _migrate(store: Store, args: argparse.Namespace) -> int:
    from lab_hooks.store.migrate import migrate

    target = Store(args.to)  # a URL, or a local store's directory
    report = migrate(store, target, say=print)
    print(f"migrated {report.artifacts} artifacts ({_size(report.bytes)}; {report.already} were there), "
          f"{report.records:,} records, {report.runs} runs, {report.refs} refs to {target.db.where}")
    return 0


@command("lab-hooks store")
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="lab-hooks store", description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--home", help="a local store's directory (default: $LAB_STORE_URL, else $LAB_HOME/store)")
    where.add_argument("--url", help="a store URL: postgresql://…?artifacts=/shared/dir or sqlite:///dir")
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
    ref = sub.add_parser("ref", help="list, set or delete refs (the names of what is current)")
    ref_sub = ref.add_subparsers(dest="ref_command", required=True)
    ref_ls = ref_sub.add_parser("ls", help="every ref and the key it names")
    ref_ls.add_argument("prefix", nargs="?", default="", help="only refs starting with this (e.g. main/)")
    ref_set = ref_sub.add_parser("set", help="point a ref at an artifact or record")
    ref_set.add_argument("name", help="e.g. main/checkpoint")
    ref_set.add_argument("key", help="the key, or a unique prefix of it (as `store ls` shows)")
    ref_set.add_argument("--expect", metavar="KEY", help="only if the ref names KEY now ('none': only if unset)")
    ref_rm = ref_sub.add_parser("rm", help="delete refs")
    ref_rm.add_argument("names", nargs="+")
    migrate = sub.add_parser("migrate", help="copy this store into another (e.g. a local one into PostgreSQL)")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="postgresql://…?artifacts=/shared/dir, sqlite:///dir or a directory")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    named = args.home or (args.url[len("sqlite://"):] if (args.url or "").startswith("sqlite://") else None)
    if named and not Path(named).is_dir():  # a typo must not create a store there
        raise InputError(f"no store at {named} (not a directory)")
    try:
        store = Store(args.home, url=args.url)
        commands = {"ls": _ls, "verify": _verify, "gc": _gc, "ref": _ref, "migrate": _migrate}
        return commands[args.command](store, args)
    except (StoreError, sqlite3.DatabaseError, OSError) as exc:
        print(redact(f"lab-hooks store: {exc}"), file=sys.stderr)
        return 2
