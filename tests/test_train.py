"""The trainer on a tiny random Llama in one process: masks, packing, exact resume, LoRA, OSF.

Under torchrun (FSDP2, two processes): tests/test_train_fsdp.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lab_hooks.train.data import (  # noqa: E402
    EMPTY_ROW, IGNORE, first_fit_decreasing, packed_row, prepare, rank_rows, split_across_ranks, tokenize_sample,
)
from lab_hooks.train.loop import TrainConfig, TrainError, row_loss, train  # noqa: E402
from lab_hooks.train.model import load_model  # noqa: E402
import tiny_student  # noqa: E402  (tests/ is on sys.path)
from tiny_student import SAMPLES, sample, weights, write_generated  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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


def test_rank_rows_give_every_rank_as_many_rows_and_every_sample_once(tokenizer):
    batch = prepare([sample(i) for i in range(9)], tokenizer, 512, 1).samples
    lengths = sorted(len(s.input_ids) for s in batch)
    capacity = lengths[-1] + lengths[0]  # the longest sample shares its row with the shortest only
    rows = [rank_rows(batch, 2, rank, capacity) for rank in (0, 1)]
    assert len(rows[0]) == len(rows[1])
    real = [r for ranked in rows for r in ranked if r is not EMPTY_ROW]
    assert sorted(len(r["input_ids"]) for r in real) != sorted(lengths)  # packed: fewer rows than samples
    assert sum(len(r["input_ids"]) for r in real) == sum(lengths)
    assert rank_rows(batch, 1, 0, capacity) == [packed_row([batch[i] for i in b])
                                                for b in first_fit_decreasing([len(s.input_ids) for s in batch], capacity)]
    assert rank_rows(batch[:1], 2, 1, capacity) == [EMPTY_ROW]  # nothing left for rank 1: it still steps along


def test_packed_row_loss_is_the_sum_of_its_samples_losses(student, tokenizer):
    """No attention across samples, for the attention the trainer uses (load_model's model, row_loss)."""
    cpu = torch.device("cpu")
    model = load_model(student, TrainConfig(), cpu)[1].eval()
    samples = prepare([sample(i, unmask=i == 2) for i in range(5)], tokenizer, 512, 1).samples
    row = packed_row(samples)
    with torch.no_grad():
        packed, count = row_loss(model, row, cpu)
        alone = [row_loss(model, packed_row([s]), cpu) for s in samples]
        assert count == sum(n for _, n in alone) > 0
        assert torch.allclose(packed, sum(loss for loss, _ in alone), rtol=1e-6)
        # and the check can fail: the same row under one causal mask (positions still restarting)
        ids, positions = torch.tensor([row["input_ids"]]), torch.tensor([row["position_ids"]])
        logits = model(input_ids=ids, position_ids=positions, attention_mask=torch.ones_like(ids)).logits[0, :-1]
        labels = torch.tensor(row["labels"][1:])
        mixed = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    assert not torch.allclose(mixed, packed, rtol=1e-5)  # a random tiny model barely reads context: 2e-4 apart


CONFIG = TrainConfig(batch_size=8, max_tokens=512, learning_rate=3e-3, warmup_steps=3, epochs=4, save_every=2, progress=False)


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
    resume = out / "resume.json"
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
        killed_after.append(json.loads(resume.read_text())["step"])
    assert killed_after == sorted(killed_after) and killed_after[-1] < 24
    checkpoint, summary = train(SAMPLES, student, out, CONFIG)
    assert summary["resumed_at_step"] == killed_after[-1]
    reference = weights(uninterrupted[0])
    resumed = weights(checkpoint)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


@pytest.mark.parametrize("method, lr", [("lora", 1e-2), ("osf", 3e-3)])
def test_adapters_train_and_serve_a_merged_checkpoint(student, tmp_path, method, lr):
    config = TrainConfig(method=method, batch_size=8, max_tokens=200, learning_rate=lr, max_steps=4, progress=False)
    checkpoint, summary = train(SAMPLES[:16], student, tmp_path, config)
    assert not list(checkpoint.glob("adapter_*"))  # merged: a plain HF dir
    merged, base = weights(checkpoint), weights(student)
    assert merged.keys() == base.keys()
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged["model.norm.weight"], base["model.norm.weight"])  # adapters leave the rest alone
    assert summary["loss_last"] < summary["loss_first"]


def test_osf_projection_once_per_step_equals_peft_hooks_on_every_backward(student, tokenizer):
    """The trainer projects OSF's gradients once per step (PEFT's hooks do not survive FSDP2)."""
    from lab_hooks.train.model import osf_layers, project_osf_gradients

    cpu = torch.device("cpu")
    rows = [packed_row([s]) for s in prepare([sample(i) for i in (1, 2)], tokenizer, 512, 1).samples]

    def gradients(projection: str) -> dict:
        model = load_model(student, TrainConfig(method="osf"), cpu)[1]
        if projection == "peft hooks":
            for layer in osf_layers(model):
                layer._attach_hooks("default")
        for row in rows:  # two backwards, accumulated as in a step
            row_loss(model, row, cpu)[0].backward()
        if projection == "ours":
            project_osf_gradients(model)
        return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}

    ours, peft_hooks, unprojected = gradients("ours"), gradients("peft hooks"), gradients("none")
    assert ours.keys() == peft_hooks.keys() and any(".U_low" in name for name in ours)
    assert all(torch.allclose(ours[k], peft_hooks[k], atol=1e-7) for k in ours)
    assert not all(torch.allclose(ours[k], unprojected[k], atol=1e-7) for k in ours)


def test_a_different_run_in_the_same_dir_is_refused(student, tmp_path):
    config = TrainConfig(batch_size=8, max_steps=4, save_every=2, progress=False)
    (tmp_path / "resume.json").write_text(json.dumps({"run": "someone else", "step": 2, "world_size": 1}))
    with pytest.raises(TrainError, match="holds a different run"):
        train(SAMPLES[:8], student, tmp_path, config)


def test_a_resume_point_of_another_world_size_is_refused(tmp_path):
    from lab_hooks.train import resume

    (tmp_path / "resume.json").write_text(json.dumps({"run": "r", "step": 2, "world_size": 2, "folder": "x"}))
    with pytest.raises(TrainError, match="written by 2 processes, this run has 1: resume with --nproc_per_node 2"):
        resume.load(tmp_path, "r", model=None, optimizer=None)


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
    checkpoint, and deletes only the data the PR replaced, which nothing live names. The
    candidate's key names the student by its files, not its folder."""
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
    def train_from(folder: Path):
        return train_candidate(store, load_buffer(store), {b: new_b}, removed=[b], student=folder,
                               config=TrainConfig(batch_size=8, max_steps=2, progress=False), main_key=None)

    key, checkpoint, _ = train_from(student)
    elsewhere = tmp_path / "elsewhere"  # another runner's copy of the same student: the same key, no training
    shutil.copytree(student, elsewhere)
    assert train_from(elsewhere)[:2] == (key, checkpoint)
    buffer = advanced_leaves(buffer_leaves(store), {b: dataset(new_b)}, removed=[b])
    store.set_refs({CHECKPOINT_REF: key, BUFFER_REF: save_buffer(store, buffer)})

    assert store.gc(keep_days=0).artifacts == [old_b]
    assert store.get(key) == checkpoint and (checkpoint / "model.safetensors").is_file()
    assert load_buffer(store) == {a: SAMPLES[:16], b: new_b}
    assert not store.verify()


def test_a_trained_checkpoint_is_served_with_the_students_engine_options():
    from lab_hooks.loop.train import served_spec

    assert served_spec("vllm:/models/s?tensor_parallel_size=4&gpu_memory_utilization=0.8", Path("/c")) == \
        "vllm:/c?tensor_parallel_size=4&gpu_memory_utilization=0.8"
    assert served_spec("embedded:smollm2-135m-instruct", Path("/c")) == "hf:/c"
    assert served_spec("hf:/models/s", Path("/c")) == "hf:/c"


@pytest.mark.parametrize("method", ["full", "lora", "osf"])
def test_the_memory_plan_counts_what_the_trainer_builds(student, method):
    """Parameters, trained parameters, adapter tensors and block sizes, as load_model makes them."""
    from lab_hooks.train import plan

    config = TrainConfig(method=method)
    shape = plan.model_shape(plan.read_config(student), config)
    model = load_model(student, config, torch.device("cpu"))[1]
    base = model.get_base_model() if method != "full" else model
    assert shape.params == sum(p.numel() for name, p in base.named_parameters()
                               if not any(k in name for k in ("lora_", "osf_svd_params")))
    assert shape.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert shape.adapter_buffers == sum(b.numel() for name, b in model.named_buffers() if "_osf_" in name)
    assert shape.block_params == sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(student, local_files_only=True)
                                     .model.layers[0].parameters())


def test_the_memory_plan_names_the_fewest_gpus_that_fit(student, capsys):
    from lab_hooks.cli import main
    from lab_hooks.train import plan

    config = REPO / "bench" / "configs" / "llama-3.1-8b.json"
    assert main(["train", "--plan", "--student", str(config), "--nproc", "8", "--format", "json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["params"] == 8_030_261_248 and full["fits"]  # Llama-3.1-8B: 8.03 B, fits 8 x 80 GB
    fewest = full["smallest_gpu_count"]
    shape = plan.model_shape(plan.read_config(config), TrainConfig())
    on_gpu = [plan.on_gpu(plan.per_gpu(shape, n, TrainConfig(), 2), TrainConfig()) for n in (fewest - 1, fewest)]
    assert on_gpu[0] > plan.HEADROOM * 80 * plan.GIB >= on_gpu[1]
    assert main(["train", "--plan", "--student", str(config), "--method", "lora", "--nproc", "1"]) == 0
    assert "smallest GPU count that fits: 1" in capsys.readouterr().out
    assert main(["train", "--plan", "--student", str(REPO / "README.md")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


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


def test_activation_checkpointing_recomputes_each_block_in_backward(student, tokenizer):
    row = packed_row(prepare([sample(3)], tokenizer, 512, 1).samples)
    calls = {}
    for checkpointing in (False, True):
        model = load_model(student, TrainConfig(activation_checkpointing=checkpointing), torch.device("cpu"))[1].train()
        count = []
        model.model.layers[0].mlp.register_forward_pre_hook(lambda *_: count.append(1))  # recompute stops early
        row_loss(model, row, torch.device("cpu"))[0].backward()
        calls[checkpointing] = len(count)
    assert calls == {False: 1, True: 2}  # forward, then again in backward
