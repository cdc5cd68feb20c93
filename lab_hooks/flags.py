"""The command-line convention every subcommand follows, and the flags several share.

- git refs: `--base REF` (the branch a change goes into, merge-base semantics) and
  `--head REF` (the change; default: the working tree where that makes sense);
- the taxonomy: `--repo DIR` (its git repository) and `--root SUBDIR` (its folder
  inside the repository, default the repository's root); GitHub's repository, where one
  is meant, is `--github-repo OWNER/NAME`;
- `--format text|json` for what is printed, `--out DIR` for a folder of outputs,
  `--results FILE` for a results JSON written besides; `--seed N` for every random
  choice (`add_seed_flag`: one default, TrainConfig's);
- training settings: generated from lab_hooks.train.config.TrainConfig's fields, so
  `train`, `pr` and `promote` take the same flags and build the same config from them;
- exit codes: 0 done, 1 the input is wrong (findings, a bad leaf or ref: InputError, one
  line, file:line:col where there is one), 2 usage or anything else that stopped the
  run (LabHooksError). `command` gives every subcommand's main that contract: no
  traceback for any of these.
Old spellings stay as hidden aliases (`alias`) for one release.
"""

from __future__ import annotations

import argparse
import functools
import sys
import typing
from dataclasses import fields

from lab_hooks.errors import LabHooksError, MissingExtra, one_line

GENERATED = "lab-hooks-data"  # where `generate` writes its data and `train` reads it

# Top-level modules of the optional extras: a command that needs one says which extra to install.
EXTRAS = {"ml": ("torch", "transformers", "accelerate", "gguf", "peft", "safetensors", "tqdm", "tenacity", "numpy"),
          "vllm": ("vllm",), "postgres": ("psycopg",)}


def missing_extra(exc: ModuleNotFoundError) -> MissingExtra | None:
    """The extra to install when `exc` is an optional dependency's absence, else None (a bug)."""
    top = (exc.name or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return MissingExtra(extra, top)
    return None


def command(prog: str):
    """Decorate a subcommand's `main(argv) -> int` with the exit-code contract above."""
    def wrap(main):
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except SystemExit as exc:  # argparse: 2 for a usage error (its message printed), 0 for --help
                return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
            except LabHooksError as exc:
                return _fail(prog, one_line(exc), exc.exit_code)
            except OSError as exc:  # a file or folder named on the command line, a full disk
                where = f"{exc.filename}: " if exc.filename else ""
                return _fail(prog, f"{where}{exc.strerror or one_line(exc)}", 2)
            except ModuleNotFoundError as exc:
                extra = missing_extra(exc)
                if extra is None:
                    raise
                return _fail(prog, str(extra), extra.exit_code)
        return run
    return wrap


def _fail(prog: str, message: str, code: int) -> int:
    from lab_hooks.report.escape import log_safe

    print(f"{prog}: {log_safe(message)}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (`prog: message (see --help)`, exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


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


def alias(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, dest: str, **kwargs) -> None:
    """An old spelling of a flag, kept working but not shown in --help."""
    parser.add_argument(old, dest=dest, help=argparse.SUPPRESS, **kwargs)


def non_negative(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def add_seed_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--seed N, with the one default every command shares (TrainConfig's: the PR loop's seed)."""
    from lab_hooks.train.config import TrainConfig

    parser.add_argument("--seed", type=int, default=TrainConfig.seed, metavar="N", help=f"{what} (default {TrainConfig.seed})")


def add_min_effect_flags(parser: argparse.ArgumentParser) -> None:
    """--min-effect / --min-effect-controls, as `pr` and `eval` take them (default: the eval's)."""
    from lab_hooks.eval.reference import MIN_EFFECT, MIN_EFFECT_CONTROLS

    parser.add_argument("--min-effect", type=non_negative, metavar="NATS",
                        help="nats/token a changed leaf's reference NLL must move beyond the controls' for a verdict "
                             f"(default {MIN_EFFECT}; calibrate yours with bench/planted.py)")
    parser.add_argument("--min-effect-controls", type=non_negative, metavar="NATS",
                        help=f"the same for a control leaf (default {MIN_EFFECT_CONTROLS})")


def add_replay_flag(parser: argparse.ArgumentParser) -> None:
    """--replay-ratio R, as `train`, `pr` and `promote` take it."""
    from lab_hooks.train.mix import REPLAY_RATIO

    parser.add_argument("--replay-ratio", type=non_negative, default=REPLAY_RATIO, metavar="R",
                        help=f"replay samples from main's buffer per new sample (default {REPLAY_RATIO})")


def add_model_flags(parser: argparse.ArgumentParser, teacher: bool = True, student: bool = True,
                    judge: bool = False) -> None:
    """--teacher, --student, --judge: model specs (lab_hooks.models.specs), the embedded model by default."""
    from lab_hooks.models.specs import EMBEDDED_SPEC

    for role, wanted, what in (("teacher", teacher, "generates and judges the synthetic data"),
                               ("student", student, "the model main starts from before any promotion"),
                               ("judge", judge, "scores the evaluation's answers (the embedded one: a smoke test)")):
        if wanted:
            parser.add_argument(f"--{role}", default=EMBEDDED_SPEC, metavar="SPEC", help=f"{what} (default {EMBEDDED_SPEC})")


def _flag_type(hint) -> tuple[type, bool]:
    """(the scalar type, whether it is a tuple of them) of a TrainConfig field's annotation."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return args[0], True
    return (args[0] if args else hint), False


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`--learning-rate` for learning_rate, ...), default None:
    only the flags given override the config's own defaults."""
    from lab_hooks.train.config import TrainConfig

    group = parser.add_argument_group("training", "settings of lab_hooks.train.config.TrainConfig")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        meta = f.metadata
        if not meta.get("flag", True):
            continue
        kind, many = _flag_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        shown = " ".join(f.default) if many else f.default
        help_ = meta["help"] + ("" if f.default is None else f" (default: {shown})")
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
            continue
        kwargs = {"dest": f.name, "default": None, "help": help_, "metavar": f.name.upper() if many else None,
                  "type": at_least(meta["min"]) if kind is int and "min" in meta else kind}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if many:
            kwargs["nargs"] = "+"
        group.add_argument(flag, **kwargs)
    alias(group, "--lr", "learning_rate", type=float)


def train_config(args: argparse.Namespace, **fixed):
    """The TrainConfig the parsed training flags describe (the config's defaults for the others)."""
    from lab_hooks.train.config import TrainConfig

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if f.metadata.get("flag", True) and getattr(args, f.name, None) is not None}
    return TrainConfig(**{**given, **fixed})
