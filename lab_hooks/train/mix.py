"""The replay buffer and the data mix of a PR's training phases: pure functions.

The buffer is what main holds: every accepted sample of every leaf, per leaf
({taxonomy path: [samples]}), plus optional external replay datasets (keyed
"external:NAME"). A PR brings new datasets for its added and modified leaves and
removes the samples of leaves it deletes or modifies.

A sample's form follows InstructLab: `unmask` samples (the user turn trains too) are the
phase-1 (knowledge) form, the others the phase-2 form (see `in_phase`).

Phase 2 trains on all phase-2 samples of the PR's leaves plus a replay sample of
`ratio` times that many, spread as evenly as the leaves allow across the other leaves of
the buffer (a small leaf is as worth remembering as a big one). Phase 1 runs first only
when the PR changes knowledge leaves, with the same rule over phase-1 samples.
Everything is deterministic for a seed: same inputs, same recipe, same hash.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lab_hooks.taxonomy.leaf import Kind, taxonomy_path

Datasets = Mapping[str, Sequence[dict]]


@dataclass(frozen=True)
class Mix:
    phase: int
    samples: list[dict]  # the PR's samples first, then replay
    recipe: dict  # what went in, with "hash" covering every sample's content


def is_knowledge(leaf: str) -> bool:
    return taxonomy_path(leaf)[1] is Kind.KNOWLEDGE


def in_phase(samples: Sequence[dict], phase: int) -> list[dict]:
    """A leaf's samples in the form the phase trains.

    Phase 1 takes the `unmask` samples. Phase 2 takes the others; a leaf that has only
    `unmask` samples (our SDG writes knowledge Q&A that way) gives those with the user
    turn masked, as InstructLab's skills mix does with knowledge data.
    """
    if phase == 1:
        return [s for s in samples if s.get("unmask")]
    masked = [s for s in samples if not s.get("unmask")]
    return masked or [{**s, "unmask": False} for s in samples]


def digest(sample: dict) -> str:
    return hashlib.sha256(json.dumps(sample, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def even_quotas(sizes: Mapping[str, int], total: int, seed: str = "") -> dict[str, int]:
    """Split `total` across strata as evenly as their sizes allow (water-filling).

    Strata are filled smallest first, each taking at most an equal share of what is
    left, so what a small stratum cannot take goes to the larger ones. Among strata of
    one size, which get the one sample more (or any sample at all, when there are more
    strata than samples) follows `seed`, not the names: else every PR would replay the
    same alphabetically first leaves and never the last ones.
    """
    quotas = {}
    remaining = min(total, sum(sizes.values()))
    order = sorted(sizes, key=lambda k: (sizes[k], hashlib.sha256(f"{seed}/{k}".encode()).hexdigest(), k))
    for n, stratum in enumerate(order):
        quotas[stratum] = min(sizes[stratum], -(-remaining // (len(order) - n)))
        remaining -= quotas[stratum]
    return quotas


def replay_sample(pool: Datasets, count: int, seed: str) -> dict[str, list[dict]]:
    """`count` samples stratified across the pool's leaves, each drawn with its own seeded RNG."""
    quotas = even_quotas({leaf: len(s) for leaf, s in pool.items()}, count, seed)
    drawn = {}
    for leaf, quota in sorted(quotas.items()):
        if quota:
            ordered = sorted(pool[leaf], key=lambda s: (str(s.get("id", "")), digest(s)))
            drawn[leaf] = random.Random(f"{seed}/{leaf}").sample(ordered, quota)
    return drawn


def phase_mix(phase: int, new: Datasets, pool: Datasets, ratio: float, seed: int) -> Mix:
    new = {leaf: in_phase(s, phase) for leaf, s in sorted(new.items())}
    new = {leaf: s for leaf, s in new.items() if s}
    pool = {leaf: in_phase(s, phase) for leaf, s in sorted(pool.items())}
    pool = {leaf: s for leaf, s in pool.items() if s}
    new_count = sum(map(len, new.values()))
    wanted = round(ratio * new_count)
    # The draw follows the PR's own data too, so successive PRs replay different leaves.
    draw = f"{seed}/" + hashlib.sha256("".join(digest(x) for group in new.values() for x in group).encode()).hexdigest()
    replay = replay_sample(pool, wanted, draw)
    samples = [s for group in (new, replay) for leaf in group for s in group[leaf]]
    recipe = {
        "phase": phase,
        "seed": seed,
        "replay_ratio": ratio,
        "new": {leaf: len(s) for leaf, s in new.items()},
        "replay": {leaf: len(s) for leaf, s in replay.items()},
        "replay_wanted": wanted,
        "replay_available": sum(map(len, pool.values())),
        "samples": [[leaf, str(s.get("id", ""))] for group in (new, replay) for leaf in group for s in group[leaf]],
    }
    content = json.dumps([recipe, [digest(s) for s in samples]], sort_keys=True)
    recipe["hash"] = hashlib.sha256(content.encode()).hexdigest()
    return Mix(phase, samples, recipe)


REPLAY_RATIO = 1.0  # replay samples per new sample when none is given (train, pr, promote)


def plan_pr(
    buffer: Datasets,
    changed: Datasets,
    removed: Iterable[str] = (),
    external: Datasets | None = None,
    ratio: float = REPLAY_RATIO,
    seed: int = 0,
) -> list[Mix]:
    """The phases a PR trains, in order: phase 1 only if it changes knowledge leaves.

    `changed`: the new datasets of added and modified leaves; `removed`: leaves the PR
    deletes or modifies (and rename sources), whose old samples must not be replayed.
    """
    gone = set(removed) | set(changed)
    pool = {leaf: s for leaf, s in buffer.items() if leaf not in gone}
    pool.update({f"external:{name}": s for name, s in (external or {}).items()})
    phases = [2]
    if any(is_knowledge(leaf) and in_phase(s, 1) for leaf, s in changed.items()):
        phases = [1, 2]
    mixes = [phase_mix(phase, changed, pool, ratio, seed) for phase in phases]
    return [mix for mix in mixes if mix.samples]
