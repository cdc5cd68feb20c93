"""Two jobs that would train the same candidate (two runners on one PR, a rerun beside the
first run): one trains under the store's lock of that key, the other waits and takes its
checkpoint — they never share a work folder or its resume file."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("torch")

import tiny_student  # noqa: E402  (tests/ is on sys.path)
from test_train import SAMPLES  # noqa: E402

from lab_hooks.store import Store  # noqa: E402
from lab_hooks.train import pr as train_pr_module  # noqa: E402
from lab_hooks.train.config import TrainConfig  # noqa: E402


def test_two_jobs_with_the_same_key_train_it_once(tmp_path, embedded_model_dir, monkeypatch, capfd):
    student = tiny_student.build(tmp_path / "student", embedded_model_dir)
    trained, inside, real = [], threading.Event(), train_pr_module.train_pr

    def counted(*args, **kwargs):
        trained.append(args[4])  # the work dir
        inside.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(train_pr_module, "train_pr", counted)
    config = TrainConfig(batch_size=8, max_steps=2, progress=False)
    results = []

    def job():
        store = Store(tmp_path / "store")  # each job its own connection, as on two runners
        results.append(train_pr_module.train_candidate(store, {}, {"compositional_skills/a": SAMPLES[:16]}, [],
                                                       student, config, main_key=None)[0])

    first = threading.Thread(target=job)
    first.start()
    assert inside.wait(120)  # the first job is training; the second arrives now
    second = threading.Thread(target=job)
    second.start()
    first.join(300)
    second.join(300)
    assert len(results) == 2 and results[0] == results[1] is not None
    assert len(trained) == 1  # the waiting job trained nothing
    assert "built twice" not in capfd.readouterr().err
