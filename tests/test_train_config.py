"""Training settings have one owner (TrainConfig): `train`, `pr` and `promote` take the same
training flags, generated from its fields, and build equal configs from equal flags."""

from __future__ import annotations

from dataclasses import fields

import pytest

from lab_hooks import pr, promote
from lab_hooks.train import cli as train_cli
from lab_hooks.train.config import LEARNING_RATES, TrainConfig

FLAGS = [
    [],
    ["--method", "lora"],
    ["--method", "lora", "--lr", "1e-3", "--seed", "7", "--lora-targets", "q_proj", "v_proj"],
    ["--max-steps", "3", "--batch-size", "4", "--warmup-steps", "0", "--dtype", "fp32", "--no-progress"],
]


def configs(flags: list[str]) -> list[TrainConfig]:
    train = train_cli.build_parser().parse_args(flags)
    return [train_cli.build_config(train),
            pr.options(pr.build_parser().parse_args(["--base", "main", "--head", "pr", *flags])).train_config(),
            promote.options(promote.build_parser().parse_args(flags)).train_config()]


@pytest.mark.parametrize("flags", FLAGS)
def test_the_three_commands_build_equal_configs_from_equal_flags(flags):
    first, *others = configs(flags)
    assert all(other == first for other in others)


def test_defaults_are_the_config_s_own():
    train, in_pr, in_promote = configs([])
    assert train == in_pr == in_promote == TrainConfig()
    assert configs(["--method", "lora"])[1].learning_rate == LEARNING_RATES["lora"] == 2e-4  # was 2e-5 in pr
    assert configs([])[0].seed == 0  # was 42 in train


def test_every_config_field_is_a_flag_of_every_command():
    for parser in (train_cli.build_parser(), pr.build_parser(), promote.build_parser()):
        dests = {action.dest for action in parser._actions}
        assert {f.name for f in fields(TrainConfig) if f.metadata.get("flag", True)} <= dests


def test_the_pr_loop_s_seed_is_the_training_seed():
    opts = pr.options(pr.build_parser().parse_args(["--base", "main", "--head", "pr", "--seed", "5"]))
    assert opts.seed == opts.train_config().seed == 5


def test_replay_ratio_and_seed_have_one_default_in_every_command():
    from lab_hooks.eval.cli import _parser as eval_parser
    from lab_hooks.sdg.cli import build_parser as generate_parser
    from lab_hooks.train.mix import REPLAY_RATIO

    parsers = {"train": (train_cli.build_parser(), []), "pr": (pr.build_parser(), ["--base", "m", "--head", "h"]),
               "promote": (promote.build_parser(), [])}
    for name, (parser, required) in parsers.items():
        assert parser.parse_args(required).replay_ratio == REPLAY_RATIO, name
        assert parser.parse_args([*required, "--replay-ratio", "0.5"]).replay_ratio == 0.5, name
        with pytest.raises(SystemExit):
            parser.parse_args([*required, "--replay-ratio", "-1"])
    seeds = [train_cli.build_config(train_cli.build_parser().parse_args([])).seed,
             pr.options(pr.build_parser().parse_args(["--base", "m", "--head", "h"])).seed,
             generate_parser().parse_args(["--base", "m"]).seed,
             eval_parser().parse_args(["--base-model", "a", "--candidate", "b"]).seed]
    assert seeds == [TrainConfig.seed] * 4
