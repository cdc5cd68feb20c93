"""The loop's model-backed stages, as parameters: the real ones by default.

    run_pr(opts, store, stages=Stages(generate=my_generate))

Each is a function from its job (a frozen dataclass) to its frozen result. The loop's
own tests pass small deterministic stages here, so the loop's logic (caching, a failing
stage, a rerun after a kill, promotion order) is tested in seconds; the stages
themselves are tested on real models in their own packages' tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lab_hooks.loop.evaluate import EvaluateJob, Evaluated, evaluate
from lab_hooks.loop.generate import GenerateJob, Generated, generate
from lab_hooks.loop.train import Trained, TrainJob, train


@dataclass(frozen=True)
class Stages:
    generate: Callable[[GenerateJob], Generated] = generate
    train: Callable[[TrainJob], Trained] = train
    evaluate: Callable[[EvaluateJob], Evaluated] = evaluate
