"""The phase mix of a PR: what trains, what is replayed, and the recipe hash."""

from lab_hooks.train.mix import even_quotas, plan_pr


def samples(leaf: str, n: int, unmask: bool = False, tag: str = "") -> list[dict]:
    return [
        {
            "id": f"{leaf}#{tag}{i}",
            "messages": [{"role": "user", "content": f"{leaf} q{i}{tag}"}, {"role": "assistant", "content": f"a{i}"}],
            "metadata": {},
            "unmask": unmask,
        }
        for i in range(n)
    ]


def skill(name: str) -> str:
    return f"compositional_skills/{name}"


BUFFER = {
    skill("a"): samples(skill("a"), 40),
    skill("b"): samples(skill("b"), 3),
    skill("c"): samples(skill("c"), 40),
    skill("old"): samples(skill("old"), 40),
    "knowledge/k1": samples("knowledge/k1", 10, True) + samples("knowledge/k1", 20, tag="p2"),
}


def ids(mix) -> list[str]:
    return [s["id"] for s in mix.samples]


def test_even_quotas_fill_small_strata_then_share_the_rest():
    quotas = even_quotas({"a": 40, "b": 3, "c": 40}, 30)
    assert quotas["b"] == 3 and sorted((quotas["a"], quotas["c"])) == [13, 14]
    assert even_quotas({"a": 2, "b": 3}, 30) == {"a": 2, "b": 3}
    assert even_quotas({"a": 5}, 0) == {"a": 0}


def test_more_leaves_than_replay_samples_each_pr_replays_other_leaves():
    """Which leaves get a sample follows the seed (and so the PR), not the alphabet."""
    sizes = {f"l{i:02d}": 10 for i in range(40)}
    picks = [frozenset(k for k, q in even_quotas(sizes, 4, str(seed)).items() if q) for seed in range(20)]
    assert all(len(p) == 4 for p in picks)
    assert len(frozenset().union(*picks)) > 30  # not the same four every time
    assert even_quotas(sizes, 4, "x") == even_quotas(sizes, 4, "x")
    buffer = {skill(f"l{i:02d}"): samples(skill(f"l{i:02d}"), 10) for i in range(40)}
    replayed = [set(plan_pr(buffer, {skill(f"new{n}"): samples(skill(f"new{n}"), 4)})[0].recipe["replay"])
                for n in range(10)]
    assert len(set().union(*replayed)) > 20


def test_skill_pr_trains_phase_two_on_new_leaf_plus_equal_replay():
    new = {skill("new"): samples(skill("new"), 30)}
    (mix,) = plan_pr(BUFFER, new, removed=[skill("old")], seed=1)
    assert mix.phase == 2
    assert mix.recipe["new"] == {skill("new"): 30}
    assert sum(mix.recipe["replay"].values()) == 30
    assert skill("old") not in mix.recipe["replay"]
    assert mix.recipe["replay"][skill("b")] == 3  # the small leaf is kept whole
    assert max(mix.recipe["replay"].values()) - min(v for k, v in mix.recipe["replay"].items() if k != skill("b")) <= 1
    assert not any(s["unmask"] for s in mix.samples)  # knowledge leaves replay their phase-2 form only
    assert len(set(ids(mix))) == 60


def test_modified_leaf_replays_nothing_of_its_old_data():
    new = {skill("a"): samples(skill("a"), 5, tag="v2")}
    (mix,) = plan_pr(BUFFER, new, removed=[skill("a")], ratio=2.0)
    assert mix.recipe["new"] == {skill("a"): 5} and len(mix.samples) == 15
    assert not [i for i in ids(mix) if i.startswith(skill("a") + "#") and "v2" not in i]


def test_knowledge_pr_runs_phase_one_first():
    leaf = "knowledge/k2"
    new = {leaf: samples(leaf, 6, True) + samples(leaf, 8, tag="p2")}
    one, two = plan_pr(BUFFER, new, ratio=0.5)
    assert (one.phase, two.phase) == (1, 2)
    assert one.recipe["new"] == {leaf: 6} and one.recipe["replay"] == {"knowledge/k1": 3}
    assert all(s["unmask"] for s in one.samples)
    assert two.recipe["new"] == {leaf: 8} and sum(two.recipe["replay"].values()) == 4


def test_recipe_is_deterministic_and_its_hash_follows_content():
    new = {skill("new"): samples(skill("new"), 10)}
    first, again = plan_pr(BUFFER, new, seed=3)[0], plan_pr(dict(reversed(list(BUFFER.items()))), new, seed=3)[0]
    assert first.recipe == again.recipe and ids(first) == ids(again)
    assert plan_pr(BUFFER, new, seed=4)[0].recipe["hash"] != first.recipe["hash"]
    edited = {skill("new"): samples(skill("new"), 10)}
    edited[skill("new")][0]["messages"][1]["content"] = "changed"
    assert plan_pr(BUFFER, edited, seed=3)[0].recipe["hash"] != first.recipe["hash"]


def test_external_replay_datasets_join_the_strata_and_short_pools_give_all_they_have():
    new = {skill("new"): samples(skill("new"), 100)}
    (mix,) = plan_pr({skill("b"): BUFFER[skill("b")]}, new, external={"ilab": samples("ext", 50)})
    assert mix.recipe["replay"] == {skill("b"): 3, "external:ilab": 50}
    assert mix.recipe["replay_wanted"] == 100 and mix.recipe["replay_available"] == 53


def test_knowledge_leaf_with_only_unmask_samples_replays_them_masked_in_phase_two():
    only_unmask = {"knowledge/k3": samples("knowledge/k3", 4, True)}
    new = {skill("new"): samples(skill("new"), 4)}
    (mix,) = plan_pr(only_unmask, new)
    assert mix.recipe["replay"] == {"knowledge/k3": 4} and not any(s["unmask"] for s in mix.samples)


def test_nothing_to_train_gives_no_phase():
    assert plan_pr(BUFFER, {}, removed=[skill("a")]) == []
