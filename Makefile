# exitless: `make run` (main job) and `make test` (all checks) set everything up
# themselves: a virtualenv in .venv, the native module built by maturin. Both are
# quick when nothing changed (stamp files in .stamps/).

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(abspath .venv)
PY := $(VENV)/bin/python
STAMPS := .stamps
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

PY_TOOLS := "maturin>=1.16,<2" "cffi>=2.0" "pytest>=8" "hypothesis>=6.100" "cryptography>=42" "python-pkcs11>=0.10,<0.11"
# PySpark for exitless.spark and its tests (the e2e tests also need Java 17: .ci/run installs it)
SPARK_PY := "pyspark>=3.5,<3.6"
RUST_SOURCES := Cargo.toml Cargo.lock $(shell find native -name '*.rs' -o -name Cargo.toml -o -name cbindgen.toml -o -name '*.h')
SEAL_PURE := -p exitless-seal --no-default-features --features pure-rust
SEALEDFS_PURE := -p exitless-sealedfs --no-default-features --features pure-rust

.PHONY: run test bench bench-spark header setup system-deps rust-checks python-tests nostd-check clean

run: setup ## the main job
	$(PY) -m exitless.demo

test: setup rust-checks nostd-check python-tests ## every check CI runs
	@echo "make test: all checks passed"

bench: setup ## throughput benchmarks (not tests): JSON under bench-results/
	$(PY) -m exitless.bench --out bench-results

bench-spark: setup system-deps ## PySpark jobs with and without sealed spills (local[2], needs Java): bench-results/spark-*.json
	$(PY) -m exitless.spark.bench --out bench-results

setup: $(STAMPS)/native $(STAMPS)/spark

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(PY_TOOLS)
	@touch $@

$(STAMPS)/spark: $(STAMPS)/venv
	$(PY) -m pip install -q --disable-pip-version-check $(SPARK_PY)
	@touch $@

$(STAMPS)/native: $(STAMPS)/venv $(RUST_SOURCES)
	cd $(CURDIR) && maturin develop --release -q
	@touch $@

system-deps: ## a JVM (PySpark tests) and SoftHSM2 (PKCS#11 KMS tests), installed with apt-get if missing
	@scripts/system-deps.sh

rust-checks:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy $(SEAL_PURE) --all-targets -- -D warnings
	cargo test --workspace --release -q
	cargo test $(SEAL_PURE) --release -q

nostd-check: ## exitless-seal and exitless-sealedfs are #![no_std] + alloc (pure-rust: no C compiler); so is exitless-rt's core without `std`
	CC=/bin/false cargo check $(SEAL_PURE) --target-dir target/nostd
	CC=/bin/false cargo check $(SEALEDFS_PURE) --target-dir target/nostd
	cargo check -p exitless-rt --no-default-features --target-dir target/nostd
	@! cargo tree $(SEAL_PURE) -e normal,features --prefix none | grep -E '^[a-z0-9_-]+ feature "std"' \
	  || (echo "a dependency of exitless-seal enables std" && false)
	@! cargo tree $(SEALEDFS_PURE) -e normal,features --prefix none | grep -E '^[a-z0-9_-]+ feature "std"' \
	  || (echo "a dependency of exitless-sealedfs enables std" && false)

python-tests: setup system-deps
	$(PY) -m pytest -q

header: ## regenerate native/ffi/include/exitless.h with the pinned cbindgen
	EXITLESS_BLESS=1 cargo test -p exitless-ffi --test header -q

clean:
	rm -rf $(STAMPS) target python/exitless/_native
