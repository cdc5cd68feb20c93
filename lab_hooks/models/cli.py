"""`lab-hooks models pull|ls`: fetch the pinned assets once (then everything runs offline); list them."""

from __future__ import annotations

import sys

from lab_hooks.assets import PINS, asset_dir
from lab_hooks.flags import Parser, command
from lab_hooks.home import lab_home


@command("lab-hooks models")
def main(argv: list[str]) -> int:
    parser = Parser(prog="lab-hooks models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pull = sub.add_parser("pull", help="fetch and verify pinned assets, convert the embedded model")
    pull.add_argument("assets", nargs="*", metavar="ASSET", help=f"default: all ({', '.join(PINS)})")
    sub.add_parser("ls", help="list pinned assets and embedded models, and whether they are cached")
    args = parser.parse_args(argv)
    return pull_assets(args.assets or list(PINS)) if args.command == "pull" else list_assets()


def pull_assets(names: list[str]) -> int:
    unknown = [n for n in names if n not in PINS]
    if unknown:
        print(f"lab-hooks models: unknown asset {unknown[0]!r} (known: {', '.join(PINS)})", file=sys.stderr)
        return 2
    from lab_hooks.models.embedded import EMBEDDED, embedded_checkpoint

    for name in names:
        print(f"{name}\t{PINS[name].requirement}\t{asset_dir(name)}")
    for model, source in EMBEDDED.items():
        if source.asset in names:
            print(f"{model}\tconverted\t{embedded_checkpoint(model)}")
    return 0


def list_assets() -> int:
    """What is pinned and what is cached, without touching the network."""
    from lab_hooks.models.embedded import EMBEDDED, checkpoint_location, is_converted

    print(f"LAB_HOME {lab_home()}")
    for name, pin in PINS.items():
        path = lab_home() / "assets" / f"{name}-{pin.version}"
        state = "cached" if (path / ".complete.json").is_file() else "missing"
        print(f"asset     {name:<22} {pin.requirement:<28} {state:<8} {path}")
    for model, source in EMBEDDED.items():
        state = "cached" if is_converted(model) else "missing"
        print(f"embedded  {model:<22} {'from ' + source.asset:<28} {state:<8} {checkpoint_location(model)}")
    return 0
