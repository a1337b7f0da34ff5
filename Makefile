# Rampart — the README's two commands (`make demo`, `make test`) live here.
# Every target makes its own prerequisites: a .venv with maturin, pytest and Flask.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TOOLS := $(VENV)/.tools-installed

.PHONY: help demo test test-rust test-python test-differential fuzz build bench detect-eval lint fmt clean redis-server chromium

help:
	@echo "make demo   - build (release) and serve examples/demo.py on 127.0.0.1:5000"
	@echo "make test   - cargo test --workspace, then pytest against a fresh build"
	@echo "make build  - build the extension and install it into $(VENV)"
	@echo "make test-differential - the parser tests against Werkzeug, long (DIFF_EXAMPLES=20000)"
	@echo "make fuzz   - cargo-fuzz each parser for FUZZ_SECONDS (needs cargo-fuzz)"
	@echo "make bench  - side-by-side benchmark against bare Flask and peer extensions"
	@echo "make detect-eval [CORPUS=path.jsonl] - detection TPR/FPR through a real Flask app"
	@echo "make lint   - cargo fmt --check, clippy -D warnings, ruff"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(TOOLS): $(PY) pyproject.toml
	$(PIP) install -q --disable-pip-version-check "maturin>=1.9,<2" "pytest>=7" "flask>=2.3" "ruff>=0.6" "gunicorn>=21" "mmdb-writer>=0.2.7" "prometheus-client>=0.17" "opentelemetry-sdk>=1.20" "playwright>=1.40" "hypothesis>=6"
	@touch $@

build: $(TOOLS)
	$(VENV)/bin/maturin develop --release -q
	$(PY) -c "import flask_rampart; print('flask_rampart', flask_rampart.__version__, 'installed in $(VENV)')"

demo: build
	$(PY) examples/demo.py

test: test-rust test-python

test-rust: redis-server
	cargo test --workspace

test-python: build redis-server chromium
	$(PY) -m pytest -q -p no:cacheprovider

# The differential tests against Werkzeug, long: many more examples per property.
DIFF_EXAMPLES ?= 20000
test-differential: build
	RAMPART_DIFF_EXAMPLES=$(DIFF_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/test_parsers_differential.py

# Coverage-guided fuzzing of the parsers (fuzz/README.md), FUZZ_SECONDS per target, on stable
# through RUSTC_BOOTSTRAP (cargo install cargo-fuzz once).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= multipart cookie pairs json request
fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 || exit 1; \
	done

# The Redis tests start their own redis-server on a free loopback port (and make a TLS
# certificate with openssl); install what is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis-server:
	@command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 || { \
		echo "installing redis-server and openssl (the Redis tests start their own server)"; \
		$(SUDO) apt-get install -y -qq redis-server openssl >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server openssl; }; }

# The dashboard's tests drive Debian's Chromium through Playwright (which is told to use it
# instead of downloading a browser of its own).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (the dashboard tests drive it headless)"; \
		$(SUDO) apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }; }

bench: build
	$(PIP) install -q --disable-pip-version-check -r bench/requirements-peers.txt || echo "some peer extensions could not be installed; they are reported as such"
	$(PY) bench/overhead.py
	$(PY) bench/limit_state.py
	$(PY) bench/detect_cost.py
	$(PY) bench/geo_cost.py
	$(PY) bench/detect_eval.py $(CORPUS) --out bench/results/detection.md

# The shared corpus lives outside the project; without it only the project's own set is used.
CORPUS ?= $(wildcard ../shared/corpus/dev.jsonl) tests/detection/regression.jsonl

detect-eval: build
	$(PY) bench/detect_eval.py $(CORPUS) --misses

lint: $(TOOLS)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests bench examples
	$(VENV)/bin/ruff format --check python tests bench examples

fmt: $(TOOLS)
	cargo fmt --all
	$(VENV)/bin/ruff format python tests bench examples
	$(VENV)/bin/ruff check --fix python tests bench examples

clean:
	cargo clean
	rm -rf $(VENV) python/flask_rampart/*.so
