"""Session-wide fixtures: each model is loaded once per test session (CI has 2 cores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint (converted once per LAB_HOME)."""
    pytest.importorskip("transformers")
    from lab_hooks.models.embedded import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request) -> Path:
    """A folder for one module's shared fixtures, removed when the module is done: a store of
    trained checkpoints is GBs, and pytest would keep it to the end of the session."""
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def hf_backend(embedded_model_dir):
    """The embedded model on the transformers backend, loaded once."""
    from lab_hooks.models import load_backend

    return load_backend("embedded:smollm2-135m-instruct")


VLLM_TEST_OPTIONS = {"max_model_len": 2048, "kv_cache_memory_bytes": 512 * 2**20}  # explicit bytes, not a share of RAM
VLLM_SERVED_NAME = "smollm2"


@pytest.fixture(scope="session")
def vllm_server_process(embedded_model_dir, tmp_path_factory):
    """A real `vllm serve` of the embedded checkpoint on 127.0.0.1, started (not yet ready).

    Split from `vllm_server` so the server boots while the offline engine loads.
    """
    pytest.importorskip("vllm")
    from lab_hooks.models.serve import VLLMServer

    log_path = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    server = VLLMServer(embedded_model_dir, log_path, VLLM_SERVED_NAME, **VLLM_TEST_OPTIONS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_server(vllm_server_process) -> str:
    """The base URL of the live server, once it answers /health."""
    from lab_hooks.models import BackendError

    try:
        return vllm_server_process.wait_ready(900)
    except BackendError as exc:
        pytest.fail(f"{exc}:\n{vllm_server_process.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def vllm_backend(embedded_model_dir, vllm_server_process):
    """The vLLM offline engine on the embedded checkpoint, loaded once (the server boots meanwhile)."""
    from lab_hooks.models import load_backend

    options = "&".join(f"{k}={v}" for k, v in VLLM_TEST_OPTIONS.items())
    backend = load_backend(f"vllm:{embedded_model_dir}?{options}")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on 127.0.0.1 for the whole session (tests/postgres_server.py)."""
    from postgres_server import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def new_store_url(request, tmp_path):
    """Makes new empty stores' URLs, once per backend: SQLite in a temp dir, and PostgreSQL (a
    database of its own on the session's server) with its artifacts in a temp dir."""
    def make(name: str = "store") -> str:
        if request.param == "sqlite":
            return f"sqlite://{tmp_path / name}"
        return f"{request.getfixturevalue('postgres_server').database()}?artifacts={tmp_path / name}"

    make.backend = request.param
    return make


@pytest.fixture
def store_url(new_store_url) -> str:
    return new_store_url()
