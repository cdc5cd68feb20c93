"""The trainer on a tiny random Llama: masks, packing, exact resume, LoRA, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lab_hooks.train.data import IGNORE, first_fit_decreasing, packed_row, prepare, split_across_ranks, tokenize_sample  # noqa: E402
from lab_hooks.train.loop import TrainConfig, TrainError, train  # noqa: E402
import tiny_student  # noqa: E402  (tests/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]


def sample(i: int, unmask: bool = False, system: bool = False) -> dict:
    a, b = i % 17, i % 5 + 1
    messages = [
        {"role": "user", "content": f"What is {a} plus {b}?" + " Explain." * (i % 4)},
        {"role": "assistant", "content": f"{a} plus {b} is {a + b}." + " Because counting." * (i % 3)},
    ]
    if system:
        messages.insert(0, {"role": "system", "content": "You answer sums."})
    return {"id": f"s{i}", "messages": messages, "metadata": {}, "unmask": unmask}


SAMPLES = [sample(i) for i in range(48)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model gains nothing from threads, and on a shared 2-core box they thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def student(tmp_path_factory, embedded_model_dir) -> Path:
    return tiny_student.build(tmp_path_factory.mktemp("student"), embedded_model_dir)


@pytest.fixture(scope="module")
def tokenizer(student):
    return transformers.AutoTokenizer.from_pretrained(student, local_files_only=True)


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([t for t, label in zip(tokenized.input_ids, tokenized.labels) if label != IGNORE])


def test_loss_only_on_assistant_turns(tokenizer):
    tokenized = tokenize_sample(sample(3, system=True), tokenizer)
    assert trained_text(tokenizer, tokenized) == "3 plus 4 is 7.<|im_end|>\n"
    assert tokenizer.decode(tokenized.input_ids).startswith("<|im_start|>system\nYou answer sums.")


def test_unmask_trains_the_user_turn_too_but_never_the_system(tokenizer):
    tokenized = tokenize_sample(sample(1, unmask=True, system=True), tokenizer)
    text = trained_text(tokenizer, tokenized)
    assert text.startswith("<|im_start|>user\nWhat is 1 plus 2?") and "3." in text and "sums" not in text


def test_bad_long_and_short_samples_are_dropped_and_counted(tokenizer):
    bad = [{"id": "x", "messages": []}, {"id": "y", "messages": [{"role": "user", "content": "hi"}]}]
    short = {"id": "z", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}
    long = sample(3) | {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "many " * 300}]}
    prepared = prepare([*bad, short, long, sample(2)], tokenizer, max_seq_len=200, min_trained_tokens=3)
    assert prepared.dropped == {"malformed": 2, "too_short": 1, "too_long": 1}
    assert [s.sample_id for s in prepared.samples] == ["s2"]


def test_packing_bins_and_rank_shares_cover_every_sample_once():
    lengths = [70, 20, 50, 30, 90, 10, 40, 120]
    bins = first_fit_decreasing(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(8))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins if len(b) > 1)
    assert len(bins) == 5  # the 120 alone, then 90+10, 70+30, 50+40, 20
    shares = split_across_ranks(lengths, 2)
    assert sorted(i for s in shares for i in s) == list(range(8))
    assert abs(sum(lengths[i] for i in shares[0]) - sum(lengths[i] for i in shares[1])) <= 10


def test_packed_loss_equals_per_sample_loss(student, tokenizer):
    """No attention across samples: packing changes nothing but speed."""
    model = transformers.AutoModelForCausalLM.from_pretrained(student, attn_implementation="sdpa",
                                                              local_files_only=True).eval()
    samples = prepare([sample(i, unmask=i == 2) for i in range(5)], tokenizer, 512, 1).samples

    def token_losses(rows):
        out = []
        for row in rows:
            ids = torch.tensor([row["input_ids"]])
            with torch.no_grad():
                logits = model(input_ids=ids, position_ids=torch.tensor([row["position_ids"]]), use_cache=False).logits[0]
            labels = torch.tensor(row["labels"][1:])
            losses = torch.nn.functional.cross_entropy(logits[:-1], labels, ignore_index=IGNORE, reduction="none")
            out.append(losses[labels != IGNORE])
        return torch.cat(out)

    packed = token_losses([packed_row(samples)])
    alone = token_losses([packed_row([s]) for s in samples])
    assert packed.shape == alone.shape and torch.allclose(packed, alone, atol=1e-5)
    # and the check can fail: without restarting positions the samples see each other
    row = packed_row(samples)
    row["position_ids"] = list(range(len(row["input_ids"])))
    assert not torch.allclose(token_losses([row]), alone, atol=1e-3)


CONFIG = TrainConfig(batch_size=8, max_tokens=512, learning_rate=3e-3, warmup_steps=3, epochs=4, save_every=2, progress=False)


def weights(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(checkpoint / "model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(student, tmp_path_factory):
    return train(SAMPLES, student, tmp_path_factory.mktemp("run"), CONFIG)


def test_training_lowers_the_loss_and_writes_an_hf_checkpoint(uninterrupted, student, tokenizer):
    checkpoint, summary = uninterrupted
    assert summary["steps"] == 24 and summary["samples"] == 48 and summary["loss_last"] < summary["loss_first"] * 0.8
    assert summary["real_token_fraction"] >= 0.95
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True)
    assert transformers.AutoTokenizer.from_pretrained(checkpoint, local_files_only=True).chat_template == tokenizer.chat_template
    assert not torch.equal(reloaded.model.layers[0].mlp.up_proj.weight, weights(student)["model.layers.0.mlp.up_proj.weight"])
    assert train(SAMPLES, student, checkpoint.parent, CONFIG) == uninterrupted  # done is done


CHILD = """
import json, sys
from lab_hooks.train.loop import TrainConfig, train
samples = json.load(open(sys.argv[3]))
train(samples, sys.argv[1], sys.argv[2], TrainConfig(**json.loads(sys.argv[4])))
"""


def config_json(config: TrainConfig) -> str:
    return json.dumps({k: v for k, v in config.__dict__.items() if k != "lora_targets"})


def test_kill_9_at_several_steps_then_resume_ends_bit_identical(uninterrupted, student, tmp_path):
    data = tmp_path / "samples.json"
    data.write_text(json.dumps(SAMPLES))
    out = tmp_path / "run"
    resume = out / "resume.pt"
    killed_after = []
    for saves_before_kill in (1, 3, 2):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(student), str(out), str(data), config_json(CONFIG)],
            cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        seen, last = 0, resume.stat().st_mtime_ns if resume.exists() else None
        while seen < saves_before_kill and child.poll() is None:
            now = resume.stat().st_mtime_ns if resume.exists() else None
            seen, last = seen + (now != last), now
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL, "finished before it could be killed"
        killed_after.append(torch.load(resume, weights_only=False)["step"])
    assert killed_after == sorted(killed_after) and killed_after[-1] < 24
    checkpoint, summary = train(SAMPLES, student, out, CONFIG)
    assert summary["resumed_at_step"] == killed_after[-1]
    reference = weights(uninterrupted[0])
    resumed = weights(checkpoint)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_lora_trains_and_serves_a_merged_checkpoint(student, tmp_path):
    config = TrainConfig(method="lora", batch_size=8, max_tokens=200, learning_rate=1e-2, max_steps=4, progress=False)
    checkpoint, summary = train(SAMPLES[:16], student, tmp_path, config)
    assert not list(checkpoint.glob("adapter_*"))  # merged: a plain HF dir
    merged, base = weights(checkpoint), weights(student)
    assert merged.keys() == base.keys()
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged["model.norm.weight"], base["model.norm.weight"])  # LoRA leaves the rest alone
    assert summary["loss_last"] < summary["loss_first"]


def test_a_different_run_in_the_same_dir_is_refused(student, tmp_path):
    config = TrainConfig(batch_size=8, max_steps=4, save_every=2, progress=False)
    (tmp_path / "resume.pt").parent.mkdir(exist_ok=True)
    torch.save({"run": "someone else"}, tmp_path / "resume.pt")
    with pytest.raises(TrainError, match="holds a different run"):
        train(SAMPLES[:8], student, tmp_path, config)


def write_generated(root: Path, datasets: dict[str, list[dict]]) -> Path:
    for leaf, rows in datasets.items():
        (root / "leaves" / leaf).mkdir(parents=True)
        (root / "leaves" / leaf / "messages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_torchrun_two_processes_match_one_process(student, tmp_path):
    """Same entry point under torchrun (gloo, CPU): same global batch, same weights."""
    data = write_generated(tmp_path / "data", {"compositional_skills/sums": SAMPLES[:32]})
    args = ["train", "--data", str(data), "--student", f"hf:{student}", "--batch-size", "8", "--max-tokens", "256",
            "--lr", "3e-3", "--warmup-steps", "1", "--no-progress", "--format", "json"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    runs = {}
    for name, launcher in (("one", [sys.executable, "-m"]), ("two", [sys.executable, "-m", "torch.distributed.run",
                           "--standalone", "--nproc_per_node", "2", "-m"])):
        done = subprocess.run([*launcher, "lab_hooks", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=env | {"LAB_HOME": str(tmp_path / name)})
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = json.loads(done.stdout)
    one, two = runs["one"], runs["two"]
    assert two["phases"][0]["world_size"] == 2 and one["phases"][0]["world_size"] == 1
    assert one["phases"][0]["steps"] == two["phases"][0]["steps"] == 4
    assert abs(one["phases"][0]["loss_last"] - two["phases"][0]["loss_last"]) < 1e-4
    a, b = weights(Path(one["checkpoint"])), weights(Path(two["checkpoint"]))
    assert all(torch.allclose(a[k], b[k], atol=2e-5) for k in a)
    assert not torch.equal(a["model.norm.weight"], weights(student)["model.norm.weight"])


def test_cli_reports_a_broken_dataset_in_one_line(student, tmp_path, capsys, monkeypatch):
    from lab_hooks.cli import main

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    data = write_generated(tmp_path / "data", {})
    (data / "leaves" / "x").mkdir(parents=True)
    (data / "leaves" / "x" / "messages.jsonl").write_text('{"id": 1}\nnot json\n')
    assert main(["train", "--data", str(data), "--student", f"hf:{student}", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().endswith("leaves/x/messages.jsonl:2:1: not JSON (Expecting value)")
    (data / "leaves" / "x" / "messages.jsonl").write_text(json.dumps(SAMPLES[0]) + "\n")
    monkeypatch.chdir(tmp_path)  # not a git repository
    assert main(["train", "--base", "main", "--data", str(data), "--student", f"hf:{student}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lab-hooks train: ") and err.count("\n") == 1


def test_gc_after_a_training_run_keeps_what_main_needs(student, tmp_path):
    """Main's buffer record depends on the datasets it lists: `store gc` keeps them and the
    checkpoint, and deletes only the data the PR replaced, which nothing live names."""
    from lab_hooks.store import Store, artifact_key
    from lab_hooks.train.pr import train_candidate
    from lab_hooks.train.replay import BUFFER_REF, CHECKPOINT_REF, advanced_leaves, buffer_leaves, load_buffer, save_buffer

    store = Store(tmp_path / "store")

    def dataset(rows: list[dict]) -> str:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        key = artifact_key("sdg-leaf", data=text)
        store.ensure(key, lambda out: (out / "messages.jsonl").write_text(text), kind="sdg-leaf")
        return key

    a, b = "compositional_skills/a", "compositional_skills/b"
    old_b = dataset(SAMPLES[16:32])
    store.set_refs({BUFFER_REF: save_buffer(store, {a: dataset(SAMPLES[:16]), b: old_b})})
    new_b = SAMPLES[32:48]
    key, checkpoint, _ = train_candidate(store, load_buffer(store), {b: new_b}, removed=[b], student=student,
                                         config=TrainConfig(batch_size=8, max_steps=2, progress=False), main_key=None)
    buffer = advanced_leaves(buffer_leaves(store), {b: dataset(new_b)}, removed=[b])
    store.set_refs({CHECKPOINT_REF: key, BUFFER_REF: save_buffer(store, buffer)})

    assert store.gc(keep_days=0).artifacts == [old_b]
    assert store.get(key) == checkpoint and (checkpoint / "model.safetensors").is_file()
    assert load_buffer(store) == {a: SAMPLES[:16], b: new_b}
    assert not store.verify()


def test_two_jobs_with_one_candidate_key_train_it_once(student, tmp_path, monkeypatch):
    """Two runners get the same PR at once: one trains under the key's store lock, the other
    waits and takes its checkpoint (no second training into the same work dir)."""
    import threading

    import lab_hooks.train.pr as train_pr_module
    from lab_hooks.store import Store

    trained, inside, real = [], threading.Event(), train_pr_module.train_pr

    def training(*args, **kwargs):
        trained.append(1)
        inside.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(train_pr_module, "train_pr", training)
    store, keys = Store(tmp_path / "store"), []

    def job():
        keys.append(train_pr_module.train_candidate(
            Store(tmp_path / "store"), {}, {"compositional_skills/a": SAMPLES[:16]}, removed=[], student=student,
            config=TrainConfig(batch_size=8, max_steps=2, progress=False), main_key=None)[0])

    jobs = [threading.Thread(target=job) for _ in range(2)]
    jobs[0].start()
    assert inside.wait(300)  # the first job is training when the second arrives
    jobs[1].start()
    for j in jobs:
        j.join(600)
    assert trained == [1] and len(keys) == 2 and keys[0] == keys[1] and store.get(keys[0]) is not None
