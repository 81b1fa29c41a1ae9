// Runs a wasm32-wasip1 program under Node's WASI, i.e. in V8 as Envoy runs the filter:
// `node tools/wasi_run_node.mjs PROGRAM.wasm ARGS...`. For measurements only (node:wasi is
// not a sandbox). The crate's proxy-wasm host imports (`env::proxy_*`) are defined to throw; the
// program never calls them. The exit code is the program's.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [program, ...args] = argv.slice(2);
if (!program) {
  console.error("usage: node tools/wasi_run_node.mjs PROGRAM.wasm [ARGS...]");
  exit(2);
}
const wasi = new WASI({ version: "preview1", args: [program, ...args], env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(program));
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (kind === "function" && !(from in imports && name in imports[from])) {
    imports[from] ??= {};
    imports[from][name] = () => {
      throw new Error(`host import ${from}::${name} called outside Envoy`);
    };
  }
}
const instance = await WebAssembly.instantiate(module, imports);
// The crate's proxy-wasm glue also exports `_initialize`, which node:wasi refuses next to `_start`.
const { memory, _start } = instance.exports;
exit(wasi.start({ exports: { memory, _start } }));
