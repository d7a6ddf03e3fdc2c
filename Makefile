# One overridable variable picks the torch build. torch==2.13.0 is the CPU build that lies on disk on
# our dev/CI machines; a bare "torch" would pull a CUDA build of several GB. Elsewhere, pick your own:
#   make test TORCH_SPEC="torch==2.5.1"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= tests,plots,docs
BIN := $(VENV)/bin

.PHONY: install demo test test-slow lint format type docs clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# The main job: a short LatentSAC training on HalfCheetah-v4 (with rl-zoo3's progress bar) that writes a zoo-style
# model under logs/, then rl-zoo3's enjoy replays that saved model (the latest run) for 5 deterministic 1000-step
# episodes; of its output we keep the episode count and the mean return, the last line.
demo: install
	$(BIN)/python -m rl_zoo3.train --algo latent_sac --env HalfCheetah-v4 -n 3000 -f logs -P --seed 0 -params learning_starts:1000
	$(BIN)/python -m rl_zoo3.enjoy --algo latent_sac --env HalfCheetah-v4 -f logs --no-render -n 5000 | grep -E "^[0-9]+ Episodes|^Mean reward"

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sb3_latent

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

type: install
	$(BIN)/mypy sb3_latent

docs: install
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build docs/_build *.egg-info
