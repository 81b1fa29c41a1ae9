#!/usr/bin/env python3
"""Runs a wasm32-wasip1 program under wasmtime (the PyPI package, which ships the engine).

Cargo's target runner for `make test-wasm-crypto`: `CARGO_TARGET_WASM32_WASIP1_RUNNER` calls it as
`wasi_run.py PROGRAM.wasm ARGS...`. The program sees its arguments, environment, stdout and stderr,
and no files (the Wycheproof vectors are compiled into the test binary). SIMD is enabled as in
Envoy's V8. The crate's proxy-wasm glue is linked into test binaries too: its host imports
(`env::proxy_*`) are defined as traps, which crypto tests never reach. The exit code is the
program's.
"""
import sys

import wasmtime


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: wasi_run.py PROGRAM.wasm [ARGS...]", file=sys.stderr)
        return 2
    program = sys.argv[1]
    config = wasmtime.Config()
    config.wasm_simd = True
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = sys.argv[1:]
    wasi.inherit_env()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module.from_file(engine, program)
    linker.define_unknown_imports_as_traps(module)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
