"""Model spec strings: what users write in config and workflow inputs."""

from pathlib import Path

import pytest

from lab_hooks.models import SpecError, load_backend, parse_spec
from lab_hooks.models.specs import take_options


def test_each_kind_parses():
    assert parse_spec("embedded:smollm2-135m-instruct").target == "smollm2-135m-instruct"
    spec = parse_spec("vllm:/ckpt/main?tensor_parallel_size=2&gpu_memory_utilization=0.2&enforce_eager=true&dtype=bfloat16")
    assert (spec.kind, spec.target) == ("vllm", "/ckpt/main")
    assert spec.options == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.2,
                            "enforce_eager": True, "dtype": "bfloat16"}
    spec = parse_spec("openai:http://127.0.0.1:8000/v1#teacher")
    assert (spec.endpoints, spec.model) == (["http://127.0.0.1:8000/v1"], "teacher")


def test_replicas_and_options_of_an_openai_spec():
    spec = parse_spec("openai:http://a:8000/v1/,https://b/v1?concurrency=4&timeout=2.5#org/model-7b")
    assert spec.endpoints == ["http://a:8000/v1", "https://b/v1"]
    assert spec.options == {"concurrency": 4, "timeout": 2.5}
    assert spec.model == "org/model-7b"


@pytest.mark.parametrize("text, message", [
    ("smollm2", "expected one of embedded:, hf:, vllm:, openai:"),
    ("gguf:/x", "expected one of"),
    ("hf:", "nothing after 'hf:'"),
    ("openai:http://127.0.0.1:8000/v1", "ends in #MODEL"),
    ("openai:127.0.0.1:8000/v1#m", "is not an http(s) URL"),
    ("hf:/x?batch_size", "options must look like ?key=value"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) as exc:
        parse_spec(text)
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_option_is_refused_with_the_known_ones():
    with pytest.raises(SpecError, match=r"unknown option 'batchsize' for hf: \(known: batch_size, dtype\)"):
        take_options(parse_spec("hf:/x?batchsize=4"), {"batch_size": 16, "dtype": "auto"})


def test_missing_checkpoint_and_unknown_embedded_model(tmp_path):
    with pytest.raises(SpecError, match="is not a checkpoint dir"):
        load_backend(f"hf:{tmp_path}")
    with pytest.raises(SpecError, match="unknown embedded model 'llama-70b'"):
        load_backend("embedded:llama-70b")


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve or connect is recorded and refused (nothing leaves the machine)."""
    import socket

    attempts = []

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    loopback = ("localhost", "127.0.0.1", "::1")  # other tests' servers in this session may be talked to

    def resolve(host, *args, **kwargs):
        if host in loopback:
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(host)
        raise OSError("network refused by the test")

    def connect(sock, address):
        if isinstance(address, tuple) and address[0] in loopback:
            return real_connect(sock, address)
        attempts.append(address)
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def test_a_model_path_that_is_not_on_disk_is_one_line_and_never_a_hub_download(no_network, tmp_path):
    pytest.importorskip("transformers")
    from lab_hooks.models.hf import TransformersBackend

    hub_name = "HuggingFaceTB/SmolLM2-135M-Instruct"
    for attempt in (lambda: load_backend(f"hf:{hub_name}"), lambda: TransformersBackend(f"hf:{hub_name}", Path(hub_name))):
        with pytest.raises(SpecError) as exc:
            attempt()
        assert "is not a checkpoint dir (no config.json)" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')  # a checkpoint dir without its files
    with pytest.raises((OSError, ValueError)):  # transformers' own complaint, and nothing fetched
        TransformersBackend(f"hf:{tmp_path}", tmp_path)
    assert no_network == []


def test_lab_hooks_keeps_hugging_face_offline_unless_told_otherwise():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = "import lab_hooks, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
