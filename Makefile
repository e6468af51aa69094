# exitless: `make run` (main job) and `make test` (all checks) set everything up
# themselves: a virtualenv in .venv, the native module built by maturin, the
# benchmark drivers' library (native/bench) that the tools in python/exitless_tools
# load. Both are quick when nothing changed (stamp files in .stamps/).

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(abspath .venv)
PY := $(VENV)/bin/python
STAMPS := .stamps
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

# The Python gate's tools (`make python-lint`), pinned: a new release's rules or inference
# must not fail `make test` by themselves; the stubs are for libraries without inline types.
PY_LINT := "ruff==0.17.6" "mypy==2.4.1" "types-cffi==2.1.0.20261122" "types-tqdm==4.70.0.20261122"
PY_TOOLS := "maturin>=1.16,<2" "cffi>=2.0" "pytest>=8" "hypothesis>=6.100" "cryptography>=42" "python-pkcs11>=0.10,<0.11" "matplotlib>=3.7" "tqdm>=4.66" "jsonschema>=4.18" $(PY_LINT)
# PySpark for exitless.spark and its tests (the e2e tests also need Java 17: .ci/run installs it)
SPARK_PY := "pyspark>=3.5,<3.6"
RUST_SOURCES := Cargo.toml Cargo.lock $(shell find native -name '*.rs' -o -name Cargo.toml -o -name cbindgen.toml -o -name '*.h')
SEAL_PURE := -p exitless-seal --no-default-features --features pure-rust
# exitless-seal's other crypto providers: ring (its default) and aws-lc (the host build's:
# exitless-ffi switches it on, so the --workspace runs use it). Each runs the test
# vectors of docs/FORMAT.md (native/seal/tests/vectors.rs).
SEAL_RING := -p exitless-seal
SEAL_AWSLC := -p exitless-seal --no-default-features --features aws-lc
# The core + alloc builds Occlum's LibOS uses, checked for a target without std.
SEALEDFS_PURE := -p exitless-sealedfs --no-default-features --features pure-rust
IO_CORE := -p exitless-io --no-default-features
RT_CORE := -p exitless-rt --no-default-features
NOSTD_TARGET := x86_64-unknown-none
NOSTD := --target $(NOSTD_TARGET) --target-dir target/nostd

.PHONY: spark-latest-test help run test ci bench bench-spark stress header setup bench-lib system-deps rust-checks python-lint python-tests nostd-check occlum-toolchain-check occlum-check clean \
	fuzz fuzz-quick fuzz-build fuzz-lint fuzz-tools fuzz-seeds miri asan nightly

run: setup system-deps ## the main job: Spark with and without exitless, the quick benchmark matrix, a report in bench-results/<timestamp>/
	$(PY) -m exitless_tools run

test: setup python-lint rust-checks nostd-check occlum-toolchain-check python-tests ## every check of the code (CI also runs the hardening checks: `make ci`)
	@echo "make test: all checks passed"

ci: test spark-latest-test fuzz-quick miri asan ## what .ci/run runs: `make test`, the Spark tests with the newest verified pyspark, then each fuzz target for 30 s, Miri and AddressSanitizer (docs/HARDENING.md)
	@echo "make ci: all checks passed"

bench: setup system-deps ## the full benchmark (1 GiB streams, Spark 1M records), sealing vs cryptography, vCPU scaling, the Spark JVM's blocks, sealed datasets: bench-results/
	$(PY) -m exitless_tools bench --spark
	$(PY) -m exitless_tools suites --out bench-results
	$(PY) -m exitless_tools blocks-bench --out bench-results
	$(PY) -m exitless_tools dataset-bench --rows 1000000 --out bench-results

bench-spark: setup system-deps ## PySpark jobs with and without sealed spills (local[2], needs Java): bench-results/spark-*.json
	$(PY) -m exitless_tools spark-bench --out bench-results

stress: setup ## 1,000 concurrent streams from 16 threads for 60 s per backend, then one 16 GiB stream: bench-results/stress-*.json (docs/HARDENING.md)
	$(PY) -m exitless_tools stress --out bench-results

setup: $(STAMPS)/native $(STAMPS)/bench-lib $(STAMPS)/spark $(STAMPS)/jvm

bench-lib: $(STAMPS)/bench-lib ## target/release/libexitless_bench.so: the benchmark drivers (native/bench), which the tools load (not in the wheel)

$(STAMPS)/venv: pyproject.toml Makefile
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

# exitless's JVM library, into the Python package (python/exitless/spark/jvm/):
# exitless-spark.jar, compiled with javac against the installed pyspark's jars, and
# libexitless_jni.so (native/jni). javac comes from scripts/system-deps.sh.
JVM_SOURCES := $(wildcard jvm/src/io/exitless/spark/*.java)
$(STAMPS)/jvm: $(STAMPS)/spark $(JVM_SOURCES) $(RUST_SOURCES) scripts/build-jvm.sh
	@scripts/system-deps.sh
	scripts/build-jvm.sh $(PY)
	@touch $@

# The benchmark drivers' own library (exitless_tools loads it; the wheel never has it).
$(STAMPS)/bench-lib: $(RUST_SOURCES)
	@mkdir -p $(STAMPS)
	cargo build --release -q -p exitless-bench
	@touch $@

system-deps: ## a JDK (javac for jvm/, Java for PySpark) and SoftHSM2 (PKCS#11 KMS tests), installed with apt-get if missing
	@scripts/system-deps.sh

rust-checks:
	cargo fmt --all --check
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace -q
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy $(SEAL_RING) --all-targets -- -D warnings
	cargo clippy $(SEAL_AWSLC) --all-targets -- -D warnings
	cargo clippy $(SEAL_PURE) --all-targets -- -D warnings
	EXITLESS_TEST_PYTHON=$(PY) cargo test --workspace --release -q  # exitless-kms cross-tests against exitless.kms (SoftHSM2 from system-deps)
	cargo test $(SEAL_RING) --release -q
	cargo test $(SEAL_AWSLC) --release -q
	cargo test $(SEAL_PURE) --release -q

nostd-check: ## exitless-seal and exitless-sealedfs (pure-rust), exitless-io and exitless-rt without `std` build for x86_64-unknown-none (core + alloc, no std to link); no dependency enables std
	@test -d "$$(rustc --print sysroot)/lib/rustlib/$(NOSTD_TARGET)/lib" || rustup target add $(NOSTD_TARGET)
	CC=/bin/false cargo check $(SEAL_PURE) $(NOSTD)
	CC=/bin/false cargo check $(SEALEDFS_PURE) $(NOSTD)
	cargo check $(IO_CORE) $(NOSTD)
	cargo check $(RT_CORE) $(NOSTD)
	cargo clippy $(IO_CORE) $(NOSTD) -- -D warnings
	cargo test $(IO_CORE) --lib --target-dir target/nostd -q
	@for crate in "$(SEAL_PURE)" "$(SEALEDFS_PURE)" "$(IO_CORE)" "$(RT_CORE)"; do \
	  ! cargo tree $$crate --target $(NOSTD_TARGET) -e normal,features --prefix none \
	    | grep -E '^[a-z0-9_-]+ feature "std"' || { echo "nostd-check: std enabled in $$crate"; exit 1; }; \
	done

# ~2 min on a fresh machine (toolchain download ~15 s, dependencies built once), ~2 s after.
occlum-toolchain-check: ## the no_std cores Occlum's LibOS uses (exitless-seal/-sealedfs pure-rust, exitless-io/-rt without std) `cargo check` with Occlum's pinned nightly-2022-10-22 (Rust 1.66; installed with rustup if missing) and occlum_patches/occlum-toolchain.lock
	scripts/occlum-toolchain-check.sh

# Needs a clone of occlum/occlum (OCCLUM_SRC) and its dependencies: OCCLUM_MIRRORS (git
# mirrors, offline), OCCLUM_DEPS or OCCLUM_SRC/deps. About 5 minutes; not in `make test`.
occlum-check: ## compile Occlum's LibOS with the series (control and patched, HW and SIM, clippy) and run exitless-occlum's host tests (occlum_patches/check.sh on OCCLUM_SRC)
	@test -n "$(OCCLUM_SRC)" || { echo "occlum-check: set OCCLUM_SRC to a clone of occlum/occlum (and OCCLUM_MIRRORS or OCCLUM_DEPS; docs/OCCLUM.md)"; exit 2; }
	occlum_patches/check.sh "$(OCCLUM_SRC)"

# The Python gate: the lint rules, the formatting and strict typing of pyproject.toml
# ([tool.ruff], [tool.mypy]); mypy runs in .venv, so it sees PySpark's own types.
python-lint: $(STAMPS)/venv $(STAMPS)/spark ## ruff check, ruff format --check (python/, tests/) and mypy --strict (python/)
	$(VENV)/bin/ruff check python tests
	$(VENV)/bin/ruff format --check python tests
	$(VENV)/bin/mypy

# Every test, the slow ones too; a test that needs Java fails here without it
# (outside `make test` it is skipped: tests/conftest.py).
python-tests: setup system-deps
	EXITLESS_REQUIRE_JAVA=1 $(PY) -m pytest -q

# The second Spark leg of CI (docs/SPARK_VERSIONS.md): the newest verified PySpark in a
# virtualenv of its own, the JVM library rebuilt against its jars, every Spark test again.
# The package's jar is then the newest release's: the next `make` rebuilds it for .venv.
SPARK_LATEST := 4.3.0
VENV_LATEST := $(abspath .venv-spark-latest)
SPARK_TESTS := tests/test_spark_hook.py tests/test_spark_blocks.py tests/test_spark_jvm.py \
	tests/test_spark_datasets.py tests/test_sealed_io.py tests/test_spark_e2e.py

spark-latest-test: setup system-deps ## every Spark test with pyspark $(SPARK_LATEST) (.venv-spark-latest; CI's second Spark leg)
	@test -x $(VENV_LATEST)/bin/python || $(PYTHON) -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install -q --disable-pip-version-check "pyspark==$(SPARK_LATEST)" $(PY_TOOLS)
	VIRTUAL_ENV=$(VENV_LATEST) PATH=$(VENV_LATEST)/bin:$$PATH maturin develop --release -q
	rm -f $(STAMPS)/jvm
	scripts/build-jvm.sh $(VENV_LATEST)/bin/python
	cd $(CURDIR) && VIRTUAL_ENV=$(VENV_LATEST) PATH=$(VENV_LATEST)/bin:$$PATH EXITLESS_REQUIRE_JAVA=1 \
	  $(VENV_LATEST)/bin/python -m pytest -q $(SPARK_TESTS)

# Hardening (docs/HARDENING.md): fuzzing, Miri, AddressSanitizer. All need the nightly toolchain.
FUZZ_TARGETS := header segment stream completions ffi_reader
FUZZ_SECONDS ?= 600
FUZZ_QUICK_SECONDS ?= 30

nightly: ## the nightly toolchain with miri and rust-src (rustup), if missing
	@rustup toolchain list | grep -q '^nightly-' || rustup toolchain install nightly --profile minimal
	@rustup component list --toolchain nightly --installed | grep -q '^miri' || rustup component add --toolchain nightly miri
	@rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add --toolchain nightly rust-src

fuzz-tools: nightly ## cargo-fuzz, if missing
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

$(STAMPS)/atheris: $(STAMPS)/venv
	$(PY) -m pip install -q --disable-pip-version-check "atheris>=2.3"
	@touch $@

fuzz-lint: ## rustfmt and clippy (undocumented_unsafe_blocks denied) over the fuzz crate
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -q -- -D warnings

fuzz-build: fuzz-tools ## build every cargo-fuzz target (release, ASan, debug assertions)
	cargo +nightly fuzz build -a

fuzz: setup fuzz-build $(STAMPS)/atheris ## each fuzz target for FUZZ_SECONDS (default 600), one at a time, from fuzz/seeds
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS) python

fuzz-quick: setup fuzz-lint fuzz-build $(STAMPS)/atheris ## each fuzz target for FUZZ_QUICK_SECONDS (default 30): the CI run
	scripts/fuzz.sh $(FUZZ_QUICK_SECONDS) $(FUZZ_TARGETS) python

# Miri (docs/HARDENING.md, "Memory safety"): exitless-io's untrusted region, ring slots,
# validator and the sync/ocall/switchless backends (file IO with isolation off, no
# simulated short reads so the exact exit counts hold; io_uring, RDTSC-free paths and
# getrusage are ignored under Miri); exitless-seal's format code and `wipe` (RustCrypto:
# ring's assembly cannot run under Miri); exitless-rt's unsafe task/scope/lock paths at
# a small size (Tree Borrows: crossbeam-epoch breaks Stacked Borrows; its global
# collector is never freed, so leaks are not checked there); exitless-jni's handle
# boundary (a boxed object as a Java long and back).
MIRI_TEST := cargo +nightly miri test -q

miri: nightly ## Miri over the unsafe code it can run
	MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-no-short-fd-operations" $(MIRI_TEST) -p exitless-io --lib
	$(MIRI_TEST) $(SEAL_PURE) --lib
	MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" $(MIRI_TEST) -p exitless-rt --test miri_smoke
	$(MIRI_TEST) -p exitless-jni --lib

# AddressSanitizer (with LeakSanitizer) over the C ABI's tests and exitless-io's unit
# tests: std rebuilt with the sanitizer (-Zbuild-std, rust-src), own target directory.
ASAN_TARGET := $(shell rustc -vV | sed -n 's/^host: //p')

asan: nightly ## AddressSanitizer over the FFI tests
	RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="detect_leaks=1" cargo +nightly test -q -Zbuild-std \
	  --target $(ASAN_TARGET) --target-dir target/asan -p exitless-ffi -p exitless-io --features exitless-io/driver --lib --tests

fuzz-seeds: ## rewrite the committed seed corpus fuzz/seeds/ (test vectors of docs/FORMAT.md, sealed samples)
	cargo run -q --manifest-path fuzz/Cargo.toml --example seeds

header: ## regenerate native/ffi/include/exitless.h with the pinned cbindgen
	EXITLESS_BLESS=1 cargo test -p exitless-ffi --test header -q

# The module maturin generated goes, its typed stub (tracked) stays.
clean:
	rm -rf $(STAMPS) target python/exitless/_native/__pycache__ python/exitless/spark/jvm .venv-spark-latest
	rm -f python/exitless/_native/__init__.py python/exitless/_native/ffi.py python/exitless/_native/*.so

help: ## this list: every target with a description
	@echo "exitless: \`make run\` runs the main job (Spark with and without sealed spills, the benchmark report); \`make test\` runs every check"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_-]+:[^=]*## / {printf "  %-24s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))
