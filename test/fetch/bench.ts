// `npm run bench:fetch`: throughput of the fetch program on a throttled network next to the
// downloaders users would reach for, on the same files, as ratios from one run. The test
// hub and its CDN pace every connection and add a round trip before every answer
// (fetch-serve.ts), so opening many ranged connections pays off as it does on a WAN.
//
//   BENCH_RTT_MS (default 30), BENCH_CONN_MIBPS (default 40)   the network profile
//   BENCH_LARGE_GIB (default 1)    one large single file
//   BENCH_SHARDS (default 4), BENCH_SHARD_MIB (default 256)     a sharded repo
//   BENCH_S3_GIB (default 0.5)     S3 (moto, not paced: moto is a Python server)
// Anchors: `hf download` (the pinned venv), `aria2c -x16 -s16` (Debian's aria2; installed
// with apt-get when missing and this runs as root, else skipped), one curl per file.
// Not a test: numbers depend on the machine; the ratios are what to read.
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { planFor } from '../support/fetch-harness.js';
import { startTestHub, type HubFile, type TestHub } from '../support/fetch-hub.js';
import { setNetworkProfile } from '../support/fetch-serve.js';
import { pythonTool, startMoto } from '../support/fetch-python.js';

const exec = promisify(execFile);
/** The built program as the Job runs it (npm run bench:fetch builds first); tsx otherwise. */
const BUILT = 'dist/function/fetch/main.js';
const PROGRAM = existsSync(BUILT) ? [BUILT] : ['--import', 'tsx', 'function/fetch/main.ts'];
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const num = (name: string, d: number): number => Number(process.env[name] ?? String(d));
const rttMs = num('BENCH_RTT_MS', 30);
const connMiBps = num('BENCH_CONN_MIBPS', 40);
const largeGib = num('BENCH_LARGE_GIB', 1);
const shards = num('BENCH_SHARDS', 4);
const shardMib = num('BENCH_SHARD_MIB', 256);
const s3Gib = num('BENCH_S3_GIB', 0.5);
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)}s`;

function synth(dir: string, name: string, size: number): Synth {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.alloc(64 * MIB);
  for (let left = size; left > 0; left -= buf.length) {
    const chunk = buf.subarray(0, Math.min(buf.length, left));
    randomFillSync(chunk);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  return {
    path: name,
    bytes: { file: path, size },
    lfs: size > 10 * MIB,
    sha256: hash.digest('hex'),
  };
}

interface Figure {
  mibps: number;
  cpuPerGib: number;
}

/**
 * Run `argv` through bash and read its children's user+sys CPU from `times`: the tool's
 * own CPU, whatever processes it starts.
 */
async function measured(
  label: string,
  bytes: number,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<Figure> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await exec(
    'bash',
    ['--norc', '--noprofile', '-c', '"$@" >/dev/null 2>&1 || exit $?; times', 'bash', ...argv],
    { env: { PATH: process.env['PATH'] ?? '', ...env }, maxBuffer: 1 << 20 },
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const line = stdout.trim().split('\n').at(-1) ?? '';
  const cpu = [...line.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
    (n, m) => n + Number(m[1]) * 60 + Number(m[2]),
    0,
  );
  const f = { mibps: bytes / MIB / s, cpuPerGib: cpu / (bytes / GIB) };
  console.log(
    `  ${label.padEnd(34)} ${s.toFixed(2).padStart(7)} s  ${f.mibps.toFixed(0).padStart(6)} MiB/s  ${f.cpuPerGib.toFixed(2).padStart(6)} CPU s/GiB`,
  );
  return f;
}

/** The program as the Job runs it, on `plan`. */
function program(plan: unknown): string[] {
  return ['env', `MODELCACHE_PLAN=${JSON.stringify(plan)}`, process.execPath, ...PROGRAM];
}

/** curl | tee file | sha256sum for every URL at once: one connection per file, hashed. */
function curlScript(urls: { url: string; out: string }[], curlArgs = ''): string {
  const script = urls
    .map(
      (u) =>
        `(set -o pipefail; curl -sfL ${curlArgs} '${u.url}' | tee '${u.out}' | sha256sum > '${u.out}.sha256') & pids="$pids $!"`,
    )
    .join('\n');
  return `set -e\npids=""\n${script}\nfor p in $pids; do wait $p; done`;
}

async function checkCurl(urls: { url: string; out: string }[]): Promise<void> {
  for (const u of urls) {
    const got = readFileSync(`${u.out}.sha256`, 'utf8').split(' ')[0];
    if (got !== (await sha(u.out))) throw new Error(`curl: ${u.url} wrote a different file`);
  }
}

/** aria2c from Debian: on PATH, else apt-get install when root, else undefined (skipped). */
async function aria2(): Promise<string | undefined> {
  const found = await exec('bash', ['-c', 'command -v aria2c']).then(
    (r) => r.stdout.trim(),
    () => '',
  );
  if (found !== '') return found;
  if (process.getuid?.() !== 0) {
    console.log('  (aria2c is not installed and this is not root: the aria2c anchor is skipped)');
    return undefined;
  }
  console.log('  installing aria2 from Debian (apt-get install -y aria2)');
  await exec('apt-get', ['install', '-y', '-q', 'aria2'], { maxBuffer: 16 << 20 }).catch(
    () => undefined,
  );
  return existsSync('/usr/bin/aria2c') ? '/usr/bin/aria2c' : undefined;
}

async function sha(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

type Synth = HubFile & { sha256: string; bytes: { file: string; size: number } };

function urlOf(hub: TestHub, repo: string, f: Synth): string {
  return `${hub.endpoint}/${repo}/resolve/${hub.commit}/${f.path}`;
}

/** Every tool on one repo; returns the figures by tool. */
async function shape(
  root: string,
  title: string,
  repo: string,
  files: Synth[],
  aria2c: string | undefined,
): Promise<Map<string, Figure>> {
  const total = files.reduce((n, f) => n + f.bytes.size, 0);
  const hub = await startTestHub({ repo, files });
  const out = new Map<string, Figure>();
  console.log(`\n${title} (${(total / GIB).toFixed(2)} GiB, ${files.length} files)`);
  const check = async (dir: string, who: string): Promise<void> => {
    for (const f of files) {
      if ((await sha(join(dir, f.path))) !== f.sha256) throw new Error(`${who}: ${f.path} differs`);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ours = mkdirp(join(root, 'ours'));
    const plan = planFor(
      { type: 'huggingFace', repo, revision: 'main', endpoint: hub.endpoint },
      ours,
    );
    out.set('modelcache', await measured('modelcache fetch', total, program(plan), {}));
    await check(ours, 'modelcache');

    const hfDir = mkdirp(join(root, 'hf'));
    out.set(
      'hf download',
      await measured(
        'hf download',
        total,
        [pythonTool('hf'), 'download', repo, '--local-dir', hfDir],
        {
          HOME: root,
          HF_HOME: join(root, 'hf-home'),
          HF_ENDPOINT: hub.endpoint,
          HF_HUB_DISABLE_TELEMETRY: '1',
          HF_HUB_DISABLE_XET: '1',
        },
      ),
    );
    rmSync(join(root, 'hf-home'), { recursive: true, force: true });
    await check(hfDir, 'hf download');

    if (aria2c !== undefined) {
      const dir = mkdirp(join(root, 'aria2'));
      const list = join(root, 'aria2.txt');
      writeFileSync(
        list,
        files
          .map((f) => `${urlOf(hub, repo, f)}\n  out=${f.path}\n  checksum=sha-256=${f.sha256}\n`)
          .join(''),
      );
      out.set(
        'aria2c -x16',
        await measured(
          'aria2c -x16 -s16 (checksum on)',
          total,
          [
            aria2c,
            '-x16',
            '-s16',
            '-k1M',
            '-j8',
            '--file-allocation=none',
            '--console-log-level=error',
            '--summary-interval=0',
            '-d',
            dir,
            '-i',
            list,
          ],
          {},
        ),
      );
      await check(dir, 'aria2c');
    }

    const rawDir = mkdirp(join(root, 'raw'));
    const urls = files.map((f, i) => ({ url: urlOf(hub, repo, f), out: join(rawDir, String(i)) }));
    out.set(
      'curl',
      await measured(
        'curl | sha256sum > file, per file',
        total,
        ['bash', '-c', curlScript(urls)],
        {},
      ),
    );
    await checkCurl(urls);
    rmSync(rawDir, { recursive: true, force: true });
  } finally {
    await hub.close();
  }
  return out;
}

function ratios(name: string, figures: Map<string, Figure>): void {
  const ours = figures.get('modelcache');
  if (ours === undefined) return;
  for (const [tool, f] of figures) {
    if (tool === 'modelcache') continue;
    console.log(
      `  ${name.padEnd(9)} modelcache / ${tool.padEnd(12)} = ${(ours.mibps / f.mibps).toFixed(2)} speed, ${(ours.cpuPerGib / f.cpuPerGib).toFixed(2)} CPU per GiB`,
    );
  }
}

async function main(): Promise<void> {
  const root = join(tmpdir(), `modelcache-bench-${process.pid}`);
  const data = join(root, 'data');
  mkdirSync(data, { recursive: true });
  try {
    console.log(
      `modelcache fetch benchmark. Network profile: ${rttMs} ms added before every file answer (one round trip), ${connMiBps} MiB/s per connection, paced in the test hub and CDN (loopback only).`,
    );
    const aria2c = await aria2();
    const large = synth(data, 'large/model.gguf', Math.floor(largeGib * GIB));
    const shardFiles = [
      synth(data, 'sharded/config.json', 4096),
      ...Array.from({ length: shards }, (_, i) =>
        synth(
          data,
          `sharded/model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`,
          shardMib * MIB,
        ),
      ),
    ].map((f) => ({ ...f, path: f.path.slice('sharded/'.length) }));
    console.log(`  files written at ${elapsed()}`);
    setNetworkProfile({ rttMs, bytesPerSecond: connMiBps * MIB });
    const one = await shape(
      root,
      'One large file',
      'bench/large',
      [{ ...large, path: 'model.gguf' }],
      aria2c,
    );
    const sharded = await shape(root, 'Sharded repo', 'bench/sharded', shardFiles, aria2c);
    setNetworkProfile(undefined);
    rmSync(join(data, 'large'), { recursive: true, force: true });

    console.log('\nfloor of this machine');
    const floor = shardFiles[1];
    if (floor !== undefined) {
      await measured(
        'sha256sum of one shard (cached)',
        floor.bytes.size,
        ['sha256sum', floor.bytes.file],
        {},
      );
    }

    let s3: Map<string, Figure> | undefined;
    if (s3Gib > 0) s3 = await s3Shape(root, data);

    console.log(
      '\nratios (speed above 1: modelcache is faster; CPU above 1: it uses more per GiB)',
    );
    ratios('one file', one);
    ratios('sharded', sharded);
    if (s3 !== undefined) ratios('s3', s3);
    console.log(`done in ${elapsed()}`);
  } finally {
    setNetworkProfile(undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

async function s3Shape(root: string, data: string): Promise<Map<string, Figure>> {
  console.log(
    `\nS3 (moto, ${s3Gib} GiB, 4 objects, loopback, not paced; uploading at ${elapsed()})`,
  );
  const moto = await startMoto();
  const out = new Map<string, Figure>();
  try {
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const objSize = Math.floor((s3Gib * GIB) / 4);
    const objects = [1, 2, 3, 4].map((i) => synth(data, `s3/part-${i}.bin`, objSize));
    for (const o of objects) {
      await client.send(
        new PutObjectCommand({
          Bucket: 'bench',
          Key: `set/${o.path}`,
          Body: readFileSync((o.bytes as { file: string }).file),
        }),
      );
    }
    client.destroy();
    const total = objSize * 4;
    const plan = planFor(
      {
        type: 's3',
        bucket: 'bench',
        prefix: 'set',
        endpoint: moto.endpoint,
        credentialsFromEnv: true,
      },
      mkdirp(join(root, 'ours-s3')),
    );
    out.set(
      'modelcache',
      await measured('modelcache fetch (s3)', total, program(plan), {
        AWS_ACCESS_KEY_ID: 'bench',
        AWS_SECRET_ACCESS_KEY: 'bench',
      }),
    );
    const rawDir = mkdirp(join(root, 'raw-s3'));
    const urls = objects.map((o, i) => ({
      url: `${moto.endpoint}/bench/set/${o.path}`,
      out: join(rawDir, String(i)),
    }));
    out.set(
      'curl',
      await measured(
        'curl | sha256sum > file, per object',
        total,
        ['bash', '-c', curlScript(urls, '--aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench')],
        {},
      ),
    );
    await checkCurl(urls);
  } finally {
    await moto.stop();
  }
  return out;
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

await main();
