// bench:oci — the OCI source next to the registry world's own clients, on the same artifact in
// the same registry (go-containerregistry's, on loopback, blobs on disk):
//
//   artifact  one large file and a config pushed with `oras push`:
//             modelcache (the fetch program, artifact layout) vs `oras pull`
//   image     a modelcar whose one layer holds /models (crane append, gzip):
//             modelcache (image layout, /models) vs `crane export | tar -x models/`
//
// Each row: seconds, MiB/s of the artifact's size, user+sys CPU seconds per GiB and peak RSS
// of the tool and its children (GNU time), and the machine's load. Only same-run ratios mean
// anything: the figures swing with load.
//
//   npm run bench:oci                 # 256 MiB (builds dist/ first, as bench:fetch does)
//   BENCH_OCI_MIB=1024 npm run bench:oci
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { bytes } from '../support/fetch-harness.js';
import { craneImage, ociTools, oras, startRegistry } from './peers.js';

const exec = promisify(execFile);
const MIB = 1 << 20;
const GIB = 1 << 30;
const SIZE = Number(process.env['BENCH_OCI_MIB'] ?? '256') * MIB;

interface Row {
  label: string;
  seconds: number;
  mibps: number;
  cpuPerGib: number;
  rssMib: number;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** `argv` under GNU time: wall seconds here, user+sys and max RSS of it and its children. */
async function measured(label: string, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Row> {
  const t0 = process.hrtime.bigint();
  const { stderr } = await exec('/usr/bin/time', ['-f', 'TIME %U %S %M', ...argv], {
    env: { PATH: process.env['PATH'] ?? '', HOME: tmpdir(), ...env },
    maxBuffer: 16 << 20,
  }).catch((err: unknown) => {
    throw new Error(
      `${label}: ${argv.join(' ').slice(0, 300)} failed: ${String((err as { stderr?: string }).stderr ?? err)}`,
    );
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const m = /TIME ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  const cpu = Number(m?.[1] ?? NaN) + Number(m?.[2] ?? NaN);
  const row = {
    label,
    seconds,
    mibps: SIZE / MIB / seconds,
    cpuPerGib: cpu / (SIZE / GIB),
    rssMib: Number(m?.[3] ?? NaN) / 1024,
  };
  console.log(
    `  ${label.padEnd(34)} ${seconds.toFixed(2).padStart(7)} s ${row.mibps.toFixed(0).padStart(6)} MiB/s ${row.cpuPerGib.toFixed(2).padStart(6)} CPU s/GiB ${row.rssMib.toFixed(0).padStart(5)} MiB RSS   (load ${load()})`,
  );
  return row;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The fetch program as the Job runs it (compiled: `npm run bench:oci` builds first), on `plan`. */
function program(plan: unknown, extra: Record<string, string> = {}): string[] {
  const knobs = Object.entries({ ...process.env, ...extra })
    .filter(([k]) => k.startsWith('MODELCACHE_FETCH_'))
    .map(([k, v]) => `${k}=${v ?? ''}`);
  return [
    'env',
    ...knobs,
    `MODELCACHE_PLAN=${JSON.stringify(plan)}`,
    process.execPath,
    'dist/function/fetch/main.js',
  ];
}

function plan(source: unknown, targetDir: string): unknown {
  return {
    version: 1,
    identity: 'b'.repeat(64),
    artifactKind: 'Weights',
    source,
    targetDir,
    report: { namespace: 'bench', jobName: 'bench' },
  };
}

async function main(): Promise<void> {
  const { crane } = ociTools();
  const work = mkdtempSync(join(tmpdir(), 'modelcache-bench-oci-'));
  mkdirSync(join(work, 'registry'));
  const registry = await startRegistry({ disk: join(work, 'registry') });
  const fresh = (name: string): string => {
    const d = join(work, name);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    return d;
  };
  try {
    console.log(
      `bench:oci: ${SIZE / MIB} MiB, registry crane ${registry.host} (loopback, unthrottled), load ${load()}`,
    );
    const data = bytes(SIZE, 1601);
    const want = createHash('sha256').update(data).digest('hex');
    const src = fresh('src');
    writeFileSync(join(src, 'model.safetensors'), data);
    writeFileSync(join(src, 'config.json'), '{"bench":true}\n');

    console.log('artifact (oras push: model.safetensors + config.json)');
    const aref = `${registry.host}/bench/artifact:v1`;
    await oras(['push', '--plain-http', '--no-tty', aref, 'model.safetensors', 'config.json'], src);
    const rows: Row[] = [];
    let out = fresh('mc-artifact');
    rows.push(
      await measured(
        'modelcache (artifact layout)',
        program(plan({ type: 'oci', ref: aref, plainHTTP: true }, out)),
      ),
    );
    if (sha256File(join(out, 'model.safetensors')) !== want)
      throw new Error('modelcache: wrong bytes');
    out = fresh('oras-pull');
    rows.push(
      await measured('oras pull', [
        ociTools().oras,
        'pull',
        '--plain-http',
        '--no-tty',
        '-o',
        out,
        aref,
      ]),
    );
    if (statSync(join(out, 'model.safetensors')).size !== SIZE)
      throw new Error('oras pull: wrong size');

    console.log('image (crane append: one gzip layer holding /models)');
    const iref = `${registry.host}/bench/modelcar:v1`;
    await craneImage(work, iref, [
      [
        { name: 'models/model.safetensors', data },
        { name: 'models/config.json', data: '{"bench":true}\n' },
      ],
    ]);
    out = fresh('mc-image');
    rows.push(
      await measured(
        'modelcache (image layout, /models)',
        program(plan({ type: 'oci', ref: iref, plainHTTP: true, layout: 'image' }, out)),
      ),
    );
    if (sha256File(join(out, 'model.safetensors')) !== want)
      throw new Error('modelcache: wrong bytes');
    out = fresh('crane-export');
    rows.push(
      await measured('crane export | tar -x models/', [
        'bash',
        '-c',
        `set -o pipefail; '${crane}' export '${iref}' - | tar -x -C '${out}' models/`,
      ]),
    );
    if (statSync(join(out, 'models/model.safetensors')).size !== SIZE)
      throw new Error('crane export: wrong size');

    const [a, o, i, c] = rows;
    if (a && o && i && c) {
      const r = (x: Row, y: Row): string => `${(x.mibps / y.mibps).toFixed(2)}x`;
      console.log(
        `ratios (modelcache / anchor, MiB/s): artifact vs oras pull ${r(a, o)}; image vs crane export ${r(i, c)}`,
      );
    }
  } finally {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
