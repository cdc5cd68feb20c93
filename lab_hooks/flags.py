"""The command-line convention every subcommand follows, and the flags several share.

- git refs: `--base REF` (the branch a change goes into, merge-base semantics) and
  `--head REF` (the change; default: the working tree where that makes sense);
- the taxonomy: `--repo DIR` (its git repository) and `--root SUBDIR` (its folder
  inside the repository, default the repository's root);
- `--format text|json` for what is printed, `--seed N` for every random choice;
- training settings: generated from lab_hooks.train.config.TrainConfig's fields, so
  `train`, `pr` and `promote` take the same flags and build the same config from them.
Old spellings stay as hidden aliases (`alias`) for one release.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields


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
