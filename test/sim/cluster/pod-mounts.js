// Preloaded (`node --import`) into each simulated fetch pod, before the fetch program.
//
// INTERIM, until the fetch program lets its environment name these paths: the kubelet
// mounts the pod's service-account token at /var/run/secrets/kubernetes.io/serviceaccount
// and creates /dev/termination-log; the program reads and writes those fixed paths
// (function/fetch/reporter.ts SERVICE_ACCOUNT_DIR, function/fetch/cli.ts TERMINATION_LOG).
// A child process cannot get a mount namespace here, so this maps exactly those absolute
// paths to the pod's own directories, given as JSON in SIM_POD_MOUNTS, for the two
// fs/promises functions the program opens them with. Everything else the program reads
// and writes (the volume, the files) is reached through the plan, whose paths the kubelet
// rewrites to the pod's volumes.
import { createRequire, syncBuiltinESMExports } from 'node:module';
import process from 'node:process';

const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises');

const mounts = JSON.parse(process.env.SIM_POD_MOUNTS ?? '{}');
delete process.env.SIM_POD_MOUNTS;

function mapped(p) {
  if (typeof p !== 'string') return p;
  for (const [from, to] of Object.entries(mounts)) {
    if (p === from) return to;
    if (p.startsWith(`${from}/`)) return `${to}${p.slice(from.length)}`;
  }
  return p;
}

const readFile = fsp.readFile;
const open = fsp.open;
fsp.readFile = (p, ...rest) => readFile(mapped(p), ...rest);
fsp.open = (p, ...rest) => open(mapped(p), ...rest);
syncBuiltinESMExports();
