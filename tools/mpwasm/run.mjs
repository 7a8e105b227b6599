// Runs Python code on the official MicroPython WebAssembly port.
//
// usage: node run.mjs [--heap BYTES] [--mount HOSTDIR:MPDIR]... < code.py
// Each mounted host directory is copied (only .py and .json files) into the runtime's
// virtual file system; "/lib" is on sys.path. The code runs with top-level await
// allowed. Exit code 0 on success, 1 if Python raised (traceback on stderr).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const args = process.argv.slice(2);
let heap = 512 * 1024;
const mounts = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--heap") heap = parseInt(args[++i], 10);
  else if (args[i] === "--mount") mounts.push(args[++i].split(":"));
  else { console.error("unknown argument " + args[i]); process.exit(2); }
}

const mp = await loadMicroPython({
  heapsize: heap,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
  linebuffer: true,
});

function copyTree(hostDir, mpDir) {
  mp.FS.mkdirTree(mpDir);
  for (const name of readdirSync(hostDir)) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const src = join(hostDir, name);
    const dst = mpDir + "/" + name;
    if (statSync(src).isDirectory()) copyTree(src, dst);
    else if (name.endsWith(".py") || name.endsWith(".json")) mp.FS.writeFile(dst, readFileSync(src));
  }
}
for (const [hostDir, mpDir] of mounts) copyTree(hostDir, mpDir);

const code = readFileSync(0, "utf8");
try {
  await mp.runPythonAsync(code);
} catch (e) {
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
