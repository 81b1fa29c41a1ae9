// Runs a wasm32-wasip1 program under Node's WASI, i.e. in V8 as Envoy runs the filter:
// `node tools/wasi_run_node.mjs PROGRAM.wasm ARGS...`. For measurements only (node:wasi is
// not a sandbox); the exit code is the program's.
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
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
