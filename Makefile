# Two commands, on a fresh Debian machine (root, Python 3.11, no GPU):
#   make demo   set up, then release the MLP stub and autograde three sample students with nbgrader
#   make test   set up, then run the whole test suite
# Re-running either is quick: the environment is rebuilt only when requirements.lock or pyproject.toml change.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_DATA := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
CHROMIUM := /usr/bin/chromium
BWRAP := /usr/bin/bwrap
POSTGRES := /usr/lib/postgresql/15/bin/initdb
export TF_CPP_MIN_LOG_LEVEL ?= 3
# nbgrader runs `alembic` from PATH: the environment's scripts come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup data demo test lint clean

setup: $(STAMP) data $(BWRAP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "deepgrade needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian's copy of Fashion-MNIST (the same four files Keras downloads), placed in the Keras cache.
$(DEBIAN_DATA):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dataset-fashion-mnist

# Debian's Chromium, for the quiz page's browser test (Playwright drives it; it downloads no browser).
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

# Debian's bubblewrap: the jails student notebooks and the trusted grader run in (README: the trust boundary).
$(BWRAP):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap

# Debian's PostgreSQL server, for the test of a gradebook in PostgreSQL (the test starts and stops its own).
$(POSTGRES):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql

data: $(STAMP) $(DEBIAN_DATA)
	$(BIN)/deepgrade data

demo: setup
	@echo "grading the whole course (5 exercises x 4 sample students) in parallel: a few minutes on 2 cores"
	$(BIN)/deepgrade demo

# The course in JupyterLab with nbgrader's formgrader, Assignment List and a local exchange (README: "Open the
# course in JupyterLab"); arguments for `deepgrade lab` in LAB_ARGS, e.g. make lab LAB_ARGS="--port 9000 --no-browser".
.PHONY: lab
lab: setup
	$(BIN)/deepgrade lab $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests autograders

# The course packaged with deepgrade (src/deepgrade/course_bundle/, committed): regenerate it after editing
# course.yml, autograders/ or the release; tests/test_release.py fails while it is stale.
.PHONY: bundle
bundle: $(STAMP)
	$(BIN)/deepgrade bundle

# Real grades are shared across the run (tests/conftest.py `graded`); `-m "not slow"` leaves out every test that
# grades end to end or trains.
test: setup lint $(CHROMIUM) $(POSTGRES) slot-wheels
	$(BIN)/python -m pytest tests -p no:cacheprovider -q -n auto --dist worksteal --durations=20

# The wheels a GPU slot carries (benchmarks/gpu_slot.sh; docs/calibration.md), downloaded once: the rehearsal in
# tests/test_gpu_slot.py installs them, as the device would.
.PHONY: slot-wheels
slot-wheels: $(STAMP)
	bash benchmarks/gpu_slot.sh --wheels

clean:
	rm -rf $(VENV) build
