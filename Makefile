# The two commands of the README. Each does all of its own set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench fuzz gpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# CPU torch is pinned (its wheel is cached locally; an unpinned torch pulls a multi-GB CUDA build).
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q -e '.[test,gpu,plots,sweep]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cascade demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	TRITON_INTERPRET=1 $(PY) -m pytest -q -n 2 tests

bench: $(STAMP)
	$(PY) bench/run_all.py

# The generality harness's long run: COUNT random cascades through Triton (interpreter) and the
# simulator; writes bench/results/generality.json. `make fuzz COUNT=3000 SHRINK=--shrink`
COUNT ?= 1000
SHRINK ?=
fuzz: $(STAMP)
	TRITON_INTERPRET=1 nice $(PY) bench/generality.py --count $(COUNT) $(SHRINK)

# On a GPU machine, with its own torch and triton and no package index (no venv: the wheels the
# source tree needs beyond them are in bench/wheels/): the GPU lane, about 8 minutes. Writes
# bench/results/<device>-<date>.json and .md. `make gpu BUDGET=300` for a shorter lane.
BUDGET ?= 480
gpu:
	PYTHONPATH=. $(PYTHON) bench/gpu_lane.py --budget $(BUDGET)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
