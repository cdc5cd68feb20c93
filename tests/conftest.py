"""Session-wide fixtures: each model is loaded once per test session (CI has 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint (converted once per LAB_HOME)."""
    pytest.importorskip("transformers")
    from lab_hooks.models.embedded import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="session")
def hf_backend(embedded_model_dir):
    """The embedded model on the transformers backend, loaded once."""
    from lab_hooks.models import load_backend

    return load_backend("embedded:smollm2-135m-instruct")


VLLM_TEST_OPTIONS = {"max_model_len": 2048, "gpu_memory_utilization": 0.1}
VLLM_SERVED_NAME = "smollm2"


@pytest.fixture(scope="session")
def vllm_server_process(embedded_model_dir, tmp_path_factory):
    """A real `vllm serve` of the embedded checkpoint on 127.0.0.1, started (not yet ready).

    Split from `vllm_server` so the server boots while the offline engine loads.
    """
    import os
    import signal
    import socket
    import subprocess
    import sys

    pytest.importorskip("vllm")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in VLLM_TEST_OPTIONS.items()]
    from lab_hooks.models.vllm_engine import engine_defaults

    defaults = engine_defaults({})
    flags += ["--enforce-eager"] if defaults.get("enforce_eager") else []
    flags += [f"--dtype={defaults['dtype']}"] if "dtype" in defaults else []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(embedded_model_dir),
             "--served-model-name", VLLM_SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
             "--seed", "0", *flags],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc, f"http://127.0.0.1:{port}/v1", log_path
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def vllm_server(vllm_server_process) -> str:
    """The base URL of the live server, once it answers /health."""
    import time

    import httpx

    proc, url, log_path = vllm_server_process
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"vllm serve not ready in 900 s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def vllm_backend(embedded_model_dir, vllm_server_process):
    """The vLLM offline engine on the embedded checkpoint, loaded once (the server boots meanwhile)."""
    from lab_hooks.models import load_backend

    options = "&".join(f"{k}={v}" for k, v in VLLM_TEST_OPTIONS.items())
    backend = load_backend(f"vllm:{embedded_model_dir}?{options}")
    yield backend
    backend.close()
