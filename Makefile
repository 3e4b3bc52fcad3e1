# The two set-up commands of the README. Both create .venv on first use.
#   make train                              the core install (classic control), cartpole-a2c
#   make train PRESET=pong-a2c EXTRAS=atari  installs the extras a preset needs first
#   make test                               everything the whole suite uses (.[test])
#   make docs                               the documentation site into site/ (.[docs])
#   make docs-serve                         the same, served at http://127.0.0.1:8000
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PRESET ?= cartpole-a2c
EXTRAS ?=
# make test runs the suite on this many pytest-xdist workers (0: in this process)
TEST_WORKERS ?= 2

.PHONY: train test docs docs-serve football mujoco-video lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The pinned version resolves to the local CPU wheel (an unpinned torch pulls CUDA).
	$(BIN)/pip install --quiet torch==2.13.0

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[docs]"
	touch $(VENV)/.installed $@

train: $(VENV)/.installed
	$(if $(EXTRAS),$(BIN)/pip install --quiet -e ".[$(EXTRAS)]")
	$(BIN)/actorcritic train $(PRESET)

test: $(VENV)/.installed-test
	@# The official football engine (issue 7): built once, wheel cached in ~/.cache; where it
	@# cannot be built (no root/sudo for apt), its tests skip and say why.
	@scripts/install_gfootball.sh || echo "note: official football engine not built; its tests are skipped (see 'make football')"
	@# Off-screen OpenGL for MuJoCo videos on machines without a display (apt, where allowed).
	@scripts/install_osmesa.sh || echo "note: OSMesa not installed; the MuJoCo video test is skipped (see 'make mujoco-video')"
	$(BIN)/ruff check actorcritic tests benchmarks scripts examples
	$(BIN)/python scripts/check_structure.py
	@# --max-worker-restart=0: a worker that dies ends the run at once, naming its test;
	@# under --dist loadgroup a replaced worker can leave pytest-xdist 3.8 waiting forever.
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --max-worker-restart=0

# Strict: a broken link, a missing page or a config key without help fails the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

football: $(VENV)/.installed
	scripts/install_gfootball.sh

mujoco-video:
	scripts/install_osmesa.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check actorcritic tests benchmarks scripts examples

bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/cartpole_throughput.py

clean:
	rm -rf $(VENV) build site *.egg-info
