# The two set-up commands (see README): `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export ASSAY_CACHE ?= $(HOME)/.cache/assay
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: system install demo test lint bench bench-results clean

# Debian packages (chromium for the browser tests, redis-server for the embedded Argilla, python3.11)
system:
	@bash .ci/system-packages

install: system $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; assay needs Python 3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# setuptools pinned in the venv too: `make lint` and the wheel test build without isolation, and a new
	# venv's own setuptools (65/66) cannot read pyproject's SPDX licence string
	$(BIN)/pip install --quiet --upgrade pip setuptools==84.2.1
	# torch first and pinned: it takes the local CPU wheel instead of a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: install
	$(BIN)/assay demo

test: install lint
	$(BIN)/python -m pytest -q

# ruff, then the layer contract of pyproject.toml on an installed copy (the folders are subpackages of assay
# only once installed; build/ is setuptools' own scratch folder, emptied first so no stale file goes in)
lint: install
	$(BIN)/ruff check .
	rm -rf build
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --target build/layers .
	cd build/layers && ../../$(BIN)/lint-imports --config ../../pyproject.toml  # from there: it looks in the working folder first

# Every benchmark the issues name; each prints its ratios against a baseline run in the same process and
# records them in benchmarks/results/NAME.json, which benchmarks/results.py compiles into benchmarks/RESULTS.md.
# Hours on 2 CPU cores (bench_quality trains students at three data sizes): run one with `make bench-NAME`.
BENCHES := dedupe semantic dedupe_precision pii synth train quality predict report review
bench: install $(addprefix bench-,$(BENCHES))
	$(BIN)/python benchmarks/results.py

bench-results: install
	$(BIN)/python benchmarks/results.py

bench-%: install
	$(BIN)/python benchmarks/bench_$*.py
	$(BIN)/python benchmarks/results.py

clean:
	rm -rf $(VENV) .pytest_cache
