"""FSDP2 under torchrun (gloo, CPU, two processes) against one process, and kill -9 of either rank.

Tolerance of "the same" across world sizes: both runs compute the same global batch,
the same loss and the same update; what differs is the order of float32 additions (each
process sums its own rows, then the reduce-scatter adds the two sums). Losses agree to
1e-5 relative, gradient norms to 1e-4. Weights: AdamW divides each gradient element by
the root of its running square, which turns a rounding difference in a near-zero
gradient element into a visible one in its update, but never more than the update
itself, at most about the learning rate per step; we allow 1 % of that
(0.01 x lr x steps) while training moves weights more than ten times as far. A wrong
reduction (averaged instead of summed gradients, a lost share, another batch) changes
the gradient norms by 2x or the losses at the first step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lab_hooks.train.loop import TrainConfig, TrainError, train  # noqa: E402
import tiny_student  # noqa: E402  (tests/ is on sys.path)
from tiny_student import SAMPLES, weights, write_generated  # noqa: E402

pytestmark = pytest.mark.slow  # each torchrun start imports the training stack twice: ~10 s

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lab_hooks"]
LR, STEPS = 3e-3, 12


@pytest.fixture(scope="module")
def student(tmp_path_factory, embedded_model_dir) -> Path:
    return tiny_student.build(tmp_path_factory.mktemp("student"), embedded_model_dir)


@pytest.fixture(scope="module")
def train_args(student, tmp_path_factory) -> list[str]:
    data = write_generated(tmp_path_factory.mktemp("data"), {"compositional_skills/sums": SAMPLES[:32]})
    return ["train", "--data", str(data), "--student", f"hf:{student}", "--batch-size", "8", "--max-tokens", "256",
            "--lr", str(LR), "--warmup-steps", "1", "--epochs", "3", "--save-every", "2", "--no-progress",
            "--format", "json"]


def cli(launcher: list[str], args: list[str], home: Path) -> dict:
    done = subprocess.run([*launcher, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=ENV | {"LAB_HOME": str(home)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def uninterrupted(train_args, tmp_path_factory) -> dict:
    """`lab-hooks train` in one process, and the same command under torchrun with two."""
    home = tmp_path_factory.mktemp("homes")
    return {"one": cli([sys.executable, "-m", "lab_hooks"], train_args, home / "one"),
            "two": cli(TORCHRUN, train_args, home / "two")}


def assert_same_run(one: dict, two: dict, one_dir: Path, two_dir: Path, student: Path, lr: float) -> None:
    assert (one["world_size"], two["world_size"]) == (1, 2) and one["steps"] == two["steps"]
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    a, b, base = weights(one_dir), weights(two_dir), weights(student)
    assert a.keys() == b.keys() == base.keys()
    tolerance = 0.01 * lr * one["steps"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= tolerance
    assert max((a[k] - base[k]).abs().max().item() for k in a) > 10 * tolerance  # it did train


def test_torchrun_world_2_gives_the_loss_curve_and_weights_of_world_1(uninterrupted, student):
    one, two = uninterrupted["one"], uninterrupted["two"]
    assert one["phases"][0]["steps"] == STEPS
    assert_same_run(one["phases"][0], two["phases"][0], Path(one["checkpoint"]), Path(two["checkpoint"]), student, LR)


@pytest.mark.parametrize("method", ["lora", "osf"])
def test_adapters_under_fsdp2_launched_by_train_match_one_process(student, tmp_path, method):
    """`nproc=2` makes `train` launch torchrun itself (what the PR loop does on a GPU runner).
    LoRA dropout is off: its masks depend on which process draws them. LoRA also runs with
    activation checkpointing, which recomputes exactly."""
    config = TrainConfig(method=method, batch_size=8, max_tokens=256, learning_rate=LR, warmup_steps=1, max_steps=4,
                         lora_dropout=0.0, progress=False)
    one_dir, one = train(SAMPLES[:32], student, tmp_path / "one", config)
    config = dataclasses.replace(config, nproc=2, activation_checkpointing=method == "lora")
    two_dir, two = train(SAMPLES[:32], student, tmp_path / "two", config)
    assert_same_run(one, two, one_dir, two_dir, student, LR)
    assert not (tmp_path / "two" / "launch").exists()


def test_a_workers_error_reaches_the_caller_in_one_line(student, tmp_path):
    with pytest.raises(TrainError, match=r"^no trainable samples among 1 \(dropped: \{'malformed': 1\}\)$"):
        train([{"id": "x", "messages": []}], student, tmp_path, TrainConfig(nproc=2, progress=False))


def workers(torchrun: int) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0") if parent == torchrun else []
        except (OSError, IndexError, ValueError):
            continue
        rank = [v for v in environ if v.startswith(b"RANK=")]
        if rank:
            found[int(rank[0][5:])] = int(stat.parent.name)
    return found


def test_kill_9_of_either_rank_then_torchrun_again_ends_bit_identical(uninterrupted, train_args, tmp_path):
    """`torchrun --nproc_per_node 2 -m lab_hooks train ...`, a rank killed after the 1st and then
    the 2nd resume point it sees; the third start resumes and ends where the uninterrupted run did."""
    home = tmp_path / "home"
    killed_at = []
    for rank, saves_before_kill in ((1, 1), (0, 2)):
        log = (tmp_path / f"torchrun-{rank}.log").open("w")
        run = subprocess.Popen([*TORCHRUN, *train_args], cwd=REPO, env=ENV | {"LAB_HOME": str(home)},
                               stdout=log, stderr=subprocess.STDOUT)
        pointer = lambda: next(home.rglob("phase2/resume.json"), None)  # noqa: E731
        stamp = lambda: pointer().stat().st_mtime_ns if pointer() else None  # noqa: E731
        seen, last = 0, stamp()
        while seen < saves_before_kill and run.poll() is None:
            now = stamp()
            seen, last = seen + (now != last), now
            time.sleep(0.005)
        os.kill(workers(run.pid)[rank], signal.SIGKILL)
        assert run.wait(timeout=120) != 0, "finished before it could be killed"
        killed_at.append(json.loads(pointer().read_text())["step"])
    assert killed_at == sorted(killed_at) and killed_at[-1] < STEPS
    resumed = cli(TORCHRUN, train_args, home)
    assert resumed["phases"][0]["resumed_at_step"] == killed_at[-1]
    reference, result = weights(Path(uninterrupted["two"]["checkpoint"])), weights(Path(resumed["checkpoint"]))
    assert reference.keys() == result.keys()
    assert all(torch.equal(reference[k], result[k]) for k in reference)

    from lab_hooks.models import load_backend
    from lab_hooks.models.types import SamplingParams

    answer = load_backend(f"hf:{resumed['checkpoint']}").chat([[{"role": "user", "content": "1 plus 2?"}]],
                                                              SamplingParams(max_tokens=4))
    assert answer[0][0].completion_tokens > 0


@pytest.mark.vllm
def test_vllm_serves_an_fsdp2_export_as_transformers_reads_it(embedded_model_dir, tmp_path):
    """The checkpoint trained and exported under torchrun, served by vLLM's engine, answers
    greedily the very text transformers answers from the same dir. Both in float32: on a CPU
    with bf16 each would round to bf16, and two bf16 kernels may part at a near tie."""
    pytest.importorskip("vllm")
    from lab_hooks.models import load_backend
    from lab_hooks.models.types import SamplingParams

    student = tiny_student.build(tmp_path / "student", embedded_model_dir, heads=2)
    config = TrainConfig(batch_size=8, max_tokens=256, learning_rate=LR, warmup_steps=1, max_steps=4, nproc=2,
                         progress=False)
    checkpoint, summary = train(SAMPLES[:32], student, tmp_path / "run", config)
    assert summary["world_size"] == 2
    questions = [[{"role": "user", "content": f"What is {a} plus {b}?"}] for a, b in ((3, 4), (11, 2))]
    greedy = SamplingParams(max_tokens=12)
    engine = load_backend(f"vllm:{checkpoint}?max_model_len=512&dtype=float32")
    try:
        served = engine.chat(questions, greedy)
    finally:
        engine.close()
    read = load_backend(f"hf:{checkpoint}?dtype=float32").chat(questions, greedy)
    assert all(answer[0].completion_tokens > 0 for answer in served)
    assert [a[0].text for a in served] == [a[0].text for a in read]
