// `npm run bench:fetch`: throughput of the fetch program on a throttled network next to the
// downloaders users would reach for, on the same files, as ratios from one run, with the
// floors of this machine and the program's peak memory on large files. The test hub and its
// CDN pace every connection and add a round trip before every answer (fetch-serve.ts), so
// opening many ranged connections pays off as it does on a WAN.
//
//   BENCH_RTT_MS (default 30), BENCH_CONN_MIBPS (default 40)   the network profile
//   BENCH_SCALE (default 1)        multiplies every size and count below
//   BENCH_ROUNDS (default 2)       each Hugging Face shape's tools run this many times, every
//                                  other round in reverse order; the best figure is kept
//   BENCH_LARGE_GIB (default 1)    one large single file
//   BENCH_SHARDS (default 4), BENCH_SHARD_MIB (default 256)     a sharded repo
//   BENCH_SMALL_FILES (default 300)   tokenizer/config-sized files, 1 KiB to 2 MiB
//   BENCH_S3_OBJECTS (default 2000), BENCH_S3_OBJECT_KIB (default 16)   an S3 prefix
//   BENCH_S3_GIB (default 0.5)     four large S3 objects
//   BENCH_RSS_GIB (default "1,2")  file sizes the program's peak RSS is measured on
//   BENCH_ONLY                     comma-separated shapes to run (large, sharded, small,
//                                  s3prefix, s3large, floor, rss); all when unset
//   MODELCACHE_FETCH_*             passed on to the fetch program (its tuning knobs, README)
// S3 is moto (test/support/fetch-python.ts), not paced: moto is a Python server, slower
// than the cap. Anchors: `hf download` and hf_transfer (the pinned fetch venv), aria2c
// -x16 -s16 (Debian's aria2, apt-get installed when missing and root), curl, s5cmd (built
// from the Go module proxy) and the AWS CLI (PyPI); test/fetch/tools.sh installs them.
// Every anchor's time and CPU run until its files are on disk (fdatasync after it, as the
// fetch program syncs before it reports), and every output is checked against the sha256.
// Not a test: numbers depend on the machine and its load (printed); the ratios are what to read.
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
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { planFor } from '../support/fetch-harness.js';
import { startTestHub, type HubFile, type TestHub } from '../support/fetch-hub.js';
import { setNetworkProfile } from '../support/fetch-serve.js';
import { startMoto, type Moto } from '../support/fetch-python.js';

const exec = promisify(execFile);
/** The built program as the Job runs it (npm run bench:fetch builds first); tsx otherwise. */
const BUILT = 'dist/function/fetch/main.js';
const PROGRAM = existsSync(BUILT) ? [BUILT] : ['--import', 'tsx', 'function/fetch/main.ts'];
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const KIB = 1024;
const num = (name: string, d: number): number => Number(process.env[name] ?? String(d));
const scale = num('BENCH_SCALE', 1);
const rounds = Math.max(1, Math.round(num('BENCH_ROUNDS', 2)));
const rttMs = num('BENCH_RTT_MS', 30);
const connMiBps = num('BENCH_CONN_MIBPS', 40);
const largeGib = num('BENCH_LARGE_GIB', 1) * scale;
const shards = Math.max(1, Math.round(num('BENCH_SHARDS', 4) * scale));
const shardMib = num('BENCH_SHARD_MIB', 256);
const smallFiles = Math.max(1, Math.round(num('BENCH_SMALL_FILES', 300) * scale));
const s3Objects = Math.max(1, Math.round(num('BENCH_S3_OBJECTS', 2000) * scale));
const s3ObjectKib = num('BENCH_S3_OBJECT_KIB', 16);
const s3Gib = num('BENCH_S3_GIB', 0.5) * scale;
const rssGib = (process.env['BENCH_RSS_GIB'] ?? '1,2')
  .split(',')
  .map((s) => Number(s) * scale)
  .filter((n) => n > 0);
const only = new Set(
  (process.env['BENCH_ONLY'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
);
const wanted = (shape: string): boolean => only.size === 0 || only.has(shape);
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const load = (): string =>
  loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');

interface Tools {
  python: string;
  hf: string;
  aws: string;
  s5cmd: string;
  aria2c: string | undefined;
}

/** Every anchor, installed by test/fetch/tools.sh (pinned, cached under .cache/). */
async function tools(): Promise<Tools> {
  console.log('  installing or finding the anchors (test/fetch/tools.sh bench)');
  const { stdout } = await exec('bash', ['test/fetch/tools.sh', 'bench'], {
    maxBuffer: 16 << 20,
  }).catch((err: unknown) => {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`test/fetch/tools.sh bench failed: ${stderr.slice(-3000)}`);
  });
  const got = new Map(
    stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  const need = (k: string): string => {
    const v = got.get(k);
    if (v === undefined) throw new Error(`test/fetch/tools.sh bench printed no ${k}=`);
    return v;
  };
  const venv = need('venv');
  return {
    python: join(venv, 'bin', 'python'),
    hf: join(venv, 'bin', 'hf'),
    aws: need('aws'),
    s5cmd: need('s5cmd'),
    aria2c: await aria2(),
  };
}

type Synth = HubFile & { sha256: string; bytes: { file: string; size: number } };

/**
 * A file of `size` random bytes on disk, hashed as written. `repeat`: one random 64 MiB
 * block written over and over (the RSS files: content plays no part there, and it is quicker).
 */
function synth(dir: string, name: string, size: number, repeat = false): Synth {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const buf = Buffer.alloc(Math.min(64 * MIB, Math.max(1, size)));
  if (repeat) randomFillSync(buf);
  for (let left = size; left > 0; left -= buf.length) {
    const chunk = buf.subarray(0, Math.min(buf.length, left));
    if (!repeat) randomFillSync(chunk);
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
  seconds: number;
  mibps: number;
  cpuPerGib: number;
  rssMib: number;
}

/**
 * Run `argv` under a Python parent that reads its children's rusage when they end: user+sys
 * CPU of the tool and every process it started, and the largest RSS among them.
 */
const RUSAGE = [
  'import resource, subprocess, sys, json',
  'r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)',
  'u = resource.getrusage(resource.RUSAGE_CHILDREN)',
  'sys.stderr.write(r.stderr.decode(errors="replace")[-3000:] if r.returncode else "")',
  'print(json.dumps({"rc": r.returncode, "cpu": u.ru_utime + u.ru_stime, "rssKib": u.ru_maxrss}))',
  'sys.exit(r.returncode)',
].join('\n');

let python = 'python3';

function print(label: string, f: Figure): void {
  console.log(
    `  ${label.padEnd(40)} ${f.seconds.toFixed(2).padStart(7)} s ${f.mibps.toFixed(0).padStart(6)} MiB/s ${f.cpuPerGib.toFixed(2).padStart(7)} CPU s/GiB ${f.rssMib.toFixed(0).padStart(5)} MiB RSS   (load ${load()})`,
  );
}

async function measured(
  label: string,
  bytes: number,
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Figure> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await exec(python, ['-c', RUSAGE, ...argv], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    maxBuffer: 1 << 20,
  }).catch((err: unknown) => {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`${label}: ${argv.join(' ').slice(0, 300)} failed: ${stderr}`);
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const u = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { cpu: number; rssKib: number };
  const f = {
    seconds,
    mibps: bytes / MIB / seconds,
    cpuPerGib: u.cpu / (bytes / GIB),
    rssMib: u.rssKib / 1024,
  };
  print(label, f);
  return f;
}

/** The program as the Job runs it, on `plan`, with the tuning knobs (MODELCACHE_FETCH_*) set here. */
function program(plan: unknown): string[] {
  const knobs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('MODELCACHE_FETCH_'))
    .map(([k, v]) => `${k}=${v ?? ''}`);
  return ['env', ...knobs, `MODELCACHE_PLAN=${JSON.stringify(plan)}`, process.execPath, ...PROGRAM];
}

/**
 * `argv`, then fdatasync of every file it wrote under `dir`: the fetch program syncs what it
 * staged before it says so (and pays the writeback in its own CPU time); the anchors do not,
 * so each is timed and charged up to its bytes being on disk as well.
 */
function synced(dir: string, argv: string[]): string[] {
  return [
    'bash',
    '-c',
    '"$@" && find "$0" -type f -print0 | xargs -0 -r sync --data',
    dir,
    ...argv,
  ];
}

interface Download {
  url: string;
  out: string;
  sha256: string;
}

/**
 * curl for every URL at once. A few files: each `curl | tee file | sha256sum`, one
 * connection per file, hashed as it streams. Many: one `curl --parallel` (16 at a time),
 * then sha256sum over the files.
 */
function curlArgv(downloads: Download[], curlArgs: string[] = []): string[] {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const extra = curlArgs.map(q).join(' ');
  if (downloads.length <= 16) {
    const lines = downloads.map(
      (d) =>
        `(set -o pipefail; curl -sfL ${extra} ${q(d.url)} | tee ${q(d.out)} | sha256sum > ${q(`${d.out}.sha256`)}) & pids="$pids $!"`,
    );
    return ['bash', '-c', `set -e\npids=""\n${lines.join('\n')}\nfor p in $pids; do wait $p; done`];
  }
  const config = `${downloads[0]?.out ?? 'x'}.curlrc`;
  writeFileSync(config, downloads.map((d) => `url = ${d.url}\noutput = ${d.out}\n`).join(''));
  const list = `${config}.files`;
  writeFileSync(list, downloads.map((d) => d.out).join('\0'));
  return [
    'bash',
    '-c',
    `set -e; curl -sfL --parallel --parallel-max 16 ${extra} -K ${q(config)}; xargs -0 sha256sum < ${q(list)} > ${q(`${config}.sums`)}`,
  ];
}

async function checkCurl(downloads: Download[]): Promise<void> {
  if (downloads.length > 16) {
    const sums = `${downloads[0]?.out ?? 'x'}.curlrc.sums`;
    const got = new Map(
      readFileSync(sums, 'utf8')
        .trim()
        .split('\n')
        .map((l) => [l.slice(66), l.slice(0, 64)] as const),
    );
    for (const d of downloads) {
      if (got.get(d.out) !== d.sha256) throw new Error(`curl: ${d.url} wrote a different file`);
    }
    return;
  }
  for (const d of downloads) {
    const got = readFileSync(`${d.out}.sha256`, 'utf8').split(' ')[0];
    if (got !== d.sha256 || (await sha(d.out)) !== d.sha256) {
      throw new Error(`curl: ${d.url} wrote a different file`);
    }
  }
}

/**
 * hf_transfer (Hugging Face's Rust downloader) on the resolve URLs, 16 connections and 16 MiB
 * chunks per file as `aria2c -x16`, files 8 at a time in Python threads; it checks no digest,
 * so each file is hashed afterwards, as the fetch program and aria2c do while downloading.
 */
const HF_TRANSFER = [
  'import sys, json, hashlib, hf_transfer',
  'from concurrent.futures import ThreadPoolExecutor',
  'jobs = json.load(open(sys.argv[1]))',
  'def one(j):',
  '    hf_transfer.download(url=j["url"], filename=j["out"], max_files=16, chunk_size=16 << 20)',
  '    h = hashlib.sha256()',
  '    with open(j["out"], "rb") as f:',
  '        for b in iter(lambda: f.read(8 << 20), b""): h.update(b)',
  '    if h.hexdigest() != j["sha256"]: raise SystemExit(j["url"] + ": digest differs")',
  'with ThreadPoolExecutor(8) as ex: list(ex.map(one, jobs))',
].join('\n');

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
  const install = (): Promise<unknown> =>
    exec('apt-get', ['install', '-y', '-q', 'aria2'], { maxBuffer: 16 << 20 });
  await install().catch(async () => {
    await exec('apt-get', ['update', '-q'], { maxBuffer: 16 << 20 });
    await install();
  });
  return existsSync('/usr/bin/aria2c') ? '/usr/bin/aria2c' : undefined;
}

async function sha(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

function urlOf(hub: TestHub, repo: string, path: string): string {
  return `${hub.endpoint}/${repo}/resolve/${hub.commit}/${path}`;
}

interface RepoFile {
  path: string;
  sha256: string;
  size: number;
}

/** Every file of `files` under `dir` has its digest; then `dir` is removed. */
async function check(dir: string, files: RepoFile[], who: string): Promise<void> {
  for (const f of files) {
    if ((await sha(join(dir, f.path))) !== f.sha256) throw new Error(`${who}: ${f.path} differs`);
  }
  rmSync(dir, { recursive: true, force: true });
}

interface Task {
  tool: string;
  label: string;
  run: () => Promise<Figure>;
}

/**
 * Each task `rounds` times, every other round in reverse order, so that a change in the
 * machine's load during the run falls on every tool alike; the best figure of each is kept.
 */
async function inRounds(tasks: Task[]): Promise<Map<string, Figure>> {
  const out = new Map<string, Figure>();
  for (let round = 0; round < rounds; round++) {
    if (rounds > 1) console.log(`  round ${round + 1} of ${rounds}`);
    for (const task of round % 2 === 0 ? tasks : [...tasks].reverse()) {
      const f = await task.run();
      const best = out.get(task.tool);
      if (best === undefined || f.mibps > best.mibps) out.set(task.tool, f);
    }
  }
  if (rounds > 1) {
    console.log('  best of the rounds:');
    for (const task of tasks) {
      const f = out.get(task.tool);
      if (f !== undefined) print(task.label, f);
    }
  }
  return out;
}

/** Every tool on one Hugging Face repo; returns the figures by tool. */
async function hubShape(
  root: string,
  t: Tools,
  title: string,
  repo: string,
  hubFiles: HubFile[],
  files: RepoFile[],
): Promise<Map<string, Figure>> {
  const total = files.reduce((n, f) => n + f.size, 0);
  const hub = await startTestHub({ repo, files: hubFiles });
  console.log(
    `\n${title}: ${files.length} files, ${fmtBytes(total)} (largest ${fmtBytes(Math.max(...files.map((f) => f.size)))})`,
  );
  const tasks: Task[] = [];
  const task = (tool: string, label: string, run: (label: string) => Promise<Figure>): void => {
    tasks.push({ tool, label, run: () => run(label) });
  };
  task('modelcache', 'modelcache fetch (sha256 on)', async (label) => {
    const ours = mkdirp(join(root, 'ours'));
    const plan = planFor(
      { type: 'huggingFace', repo, revision: 'main', endpoint: hub.endpoint },
      ours,
    );
    const f = await measured(label, total, program(plan));
    await check(ours, files, 'modelcache');
    return f;
  });
  task('hf download', 'hf download', async (label) => {
    const hfDir = mkdirp(join(root, 'hf'));
    const f = await measured(
      label,
      total,
      synced(hfDir, [t.hf, 'download', repo, '--local-dir', hfDir]),
      {
        HOME: root,
        HF_HOME: join(root, 'hf-home'),
        HF_ENDPOINT: hub.endpoint,
        HF_HUB_DISABLE_TELEMETRY: '1',
        HF_HUB_DISABLE_XET: '1',
      },
    );
    rmSync(join(root, 'hf-home'), { recursive: true, force: true });
    await check(hfDir, files, 'hf download');
    return f;
  });
  task('hf_transfer', 'hf_transfer x16 (sha256 after)', async (label) => {
    const xferDir = mkdirp(join(root, 'hf_transfer'));
    const jobs = join(root, 'hf_transfer.json');
    writeFileSync(
      jobs,
      JSON.stringify(
        files.map((f) => {
          mkdirSync(join(xferDir, f.path, '..'), { recursive: true });
          return { url: urlOf(hub, repo, f.path), out: join(xferDir, f.path), sha256: f.sha256 };
        }),
      ),
    );
    const f = await measured(label, total, synced(xferDir, [t.python, '-c', HF_TRANSFER, jobs]));
    await check(xferDir, files, 'hf_transfer');
    return f;
  });
  const aria2c = t.aria2c;
  if (aria2c !== undefined) {
    task('aria2c -x16', 'aria2c -x16 -s16 -j16 (checksum on)', async (label) => {
      const dir = mkdirp(join(root, 'aria2'));
      const list = join(root, 'aria2.txt');
      writeFileSync(
        list,
        files
          .map(
            (f) => `${urlOf(hub, repo, f.path)}\n  out=${f.path}\n  checksum=sha-256=${f.sha256}\n`,
          )
          .join(''),
      );
      const f = await measured(
        label,
        total,
        synced(dir, [
          aria2c,
          '-x16',
          '-s16',
          '-k1M',
          '-j16',
          '--file-allocation=none',
          '--console-log-level=error',
          '--summary-interval=0',
          '-d',
          dir,
          '-i',
          list,
        ]),
      );
      await check(dir, files, 'aria2c');
      return f;
    });
  }
  task(
    'curl',
    files.length <= 16 ? 'curl | sha256sum > file, per file' : 'curl --parallel, sha256sum',
    async (label) => {
      const rawDir = mkdirp(join(root, 'raw'));
      const downloads = files.map((f, i) => ({
        url: urlOf(hub, repo, f.path),
        out: join(rawDir, String(i)),
        sha256: f.sha256,
      }));
      const f = await measured(label, total, synced(rawDir, curlArgv(downloads)));
      await checkCurl(downloads);
      rmSync(rawDir, { recursive: true, force: true });
      return f;
    },
  );
  try {
    return await inRounds(tasks);
  } finally {
    await hub.close();
  }
}

function fmtBytes(n: number): string {
  if (n >= GIB) return `${(n / GIB).toFixed(2)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  return `${(n / KIB).toFixed(1)} KiB`;
}

interface Target {
  /** Anchor whose figure the program's is divided by; 'fastest' takes the fastest anchor. */
  anchor: string;
  atLeast: number;
}

function ratios(name: string, figures: Map<string, Figure>, targets: Target[] = []): void {
  const ours = figures.get('modelcache');
  if (ours === undefined) return;
  console.log(`  ${name}:`);
  for (const [tool, f] of figures) {
    if (tool === 'modelcache') continue;
    console.log(
      `    modelcache / ${tool.padEnd(14)} ${(ours.mibps / f.mibps).toFixed(2).padStart(5)} speed  ${(ours.cpuPerGib / f.cpuPerGib).toFixed(2).padStart(5)} CPU per GiB`,
    );
  }
  for (const t of targets) {
    const anchors = [...figures].filter(([k]) => k !== 'modelcache');
    const [anchor, f] =
      t.anchor === 'fastest'
        ? anchors.reduce((a, b) => (b[1].mibps > a[1].mibps ? b : a))
        : [t.anchor, figures.get(t.anchor)];
    if (f === undefined) {
      console.log(`    target ≥ ${t.atLeast}× ${t.anchor}: no figure (anchor skipped)`);
      continue;
    }
    const r = ours.mibps / f.mibps;
    console.log(
      `    target ≥ ${t.atLeast}× ${t.anchor === 'fastest' ? `the fastest anchor (${anchor})` : anchor}: ${r.toFixed(2)}× ${r >= t.atLeast ? 'met' : 'MISSED'}`,
    );
  }
}

async function floors(root: string, file: Synth, hub: TestHub, repo: string): Promise<Figure> {
  console.log(`\nFloors of this machine (${fmtBytes(file.bytes.size)}, in the page cache)`);
  const size = file.bytes.size;
  await measured('sha256sum (coreutils)', size, ['sha256sum', file.bytes.file]);
  // OpenSSL's sha256 is the one Node's crypto runs (SHA-NI where the CPU has it): the floor.
  const hash = await measured('openssl sha256 (what Node runs)', size, [
    'openssl',
    'dgst',
    '-sha256',
    file.bytes.file,
  ]);
  const out = join(root, 'floor.out');
  const write = await measured('disk write (dd bs=4M, fdatasync)', size, [
    'dd',
    `if=${file.bytes.file}`,
    `of=${out}`,
    'bs=4M',
    'conv=fdatasync',
  ]);
  rmSync(out, { force: true });
  setNetworkProfile(undefined);
  const url = urlOf(hub, repo, file.path);
  await measured('loopback, no hash (curl > /dev/null)', size, [
    'curl',
    '-sfL',
    '-o',
    '/dev/null',
    url,
  ]);
  setNetworkProfile({ rttMs, bytesPerSecond: connMiBps * MIB });
  const floor = {
    seconds: hash.seconds + write.seconds,
    mibps: 0,
    cpuPerGib: hash.cpuPerGib + write.cpuPerGib,
    rssMib: 0,
  };
  console.log(`  sha256 (openssl) + write floor: ${floor.cpuPerGib.toFixed(2)} CPU s/GiB`);
  return floor;
}

async function s3Client(moto: Moto): Promise<S3Client> {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: moto.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  await client.send(new CreateBucketCommand({ Bucket: 'bench' })).catch(() => undefined);
  return client;
}

const S3_ENV = {
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

/** Every tool on one S3 prefix of `objects`; returns the figures by tool. */
async function s3Shape(
  root: string,
  t: Tools,
  moto: Moto,
  prefix: string,
  objects: RepoFile[],
  withCurl: boolean,
): Promise<Map<string, Figure>> {
  const total = objects.reduce((n, o) => n + o.size, 0);
  const out = new Map<string, Figure>();
  const env = { ...S3_ENV, HOME: root };
  const ours = mkdirp(join(root, 'ours-s3'));
  const plan = planFor(
    { type: 's3', bucket: 'bench', prefix, endpoint: moto.endpoint, credentialsFromEnv: true },
    ours,
  );
  out.set(
    'modelcache',
    await measured('modelcache fetch (s3, sha256 on)', total, program(plan), env),
  );
  await check(ours, objects, 'modelcache');

  const s5 = mkdirp(join(root, 's5cmd'));
  out.set(
    's5cmd',
    await measured(
      's5cmd cp (no digest)',
      total,
      synced(s5, [
        t.s5cmd,
        '--endpoint-url',
        moto.endpoint,
        'cp',
        `s3://bench/${prefix}/*`,
        `${s5}/`,
      ]),
      env,
    ),
  );
  await check(s5, objects, 's5cmd');

  const aws = mkdirp(join(root, 'aws'));
  out.set(
    'aws s3 cp',
    await measured(
      'aws s3 cp --recursive (no digest)',
      total,
      synced(aws, [
        t.aws,
        '--endpoint-url',
        moto.endpoint,
        's3',
        'cp',
        '--recursive',
        '--only-show-errors',
        `s3://bench/${prefix}/`,
        aws,
      ]),
      env,
    ),
  );
  await check(aws, objects, 'aws s3 cp');

  if (withCurl) {
    const rawDir = mkdirp(join(root, 'raw-s3'));
    const downloads = objects.map((o, i) => ({
      url: `${moto.endpoint}/bench/${prefix}/${o.path}`,
      out: join(rawDir, String(i)),
      sha256: o.sha256,
    }));
    out.set(
      'curl',
      await measured(
        'curl | sha256sum > file, per object',
        total,
        synced(
          rawDir,
          curlArgv(downloads, ['--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', 'bench:bench']),
        ),
      ),
    );
    await checkCurl(downloads);
    rmSync(rawDir, { recursive: true, force: true });
  }
  return out;
}

async function upload(
  client: S3Client,
  prefix: string,
  files: { key: string; body: Buffer }[],
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let f = files[next++]; f !== undefined; f = files[next++]) {
      await client.send(
        new PutObjectCommand({ Bucket: 'bench', Key: `${prefix}/${f.key}`, Body: f.body }),
      );
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** Tokenizer- and config-sized files: 1 KiB to 2 MiB, most of them small. */
function smallSize(i: number): number {
  const sizes = [1, 2, 4, 8, 16, 32, 64, 256, 1024, 2048];
  return (sizes[i % sizes.length] ?? 1) * KIB + (i % 7) * 13;
}

function inMemory(path: string, size: number, seed: number): HubFile & RepoFile {
  const body = Buffer.alloc(size);
  randomFillSync(body);
  body.writeUInt32LE(seed, 0);
  return {
    path,
    bytes: body,
    lfs: false,
    sha256: createHash('sha256').update(body).digest('hex'),
    size,
  };
}

async function rssShape(root: string, data: string): Promise<void> {
  console.log(
    `\nPeak RSS on one large file (unpaced loopback: the fastest arrival, the most held ahead of the hash), sizes ${rssGib.map((g) => `${g} GiB`).join(', ')}`,
  );
  const rows: { gib: number; f: Figure }[] = [];
  for (const gib of rssGib) {
    const size = Math.floor(gib * GIB);
    const file = synth(data, `rss/model-${gib}.bin`, size, true);
    const hub = await startTestHub({ repo: 'bench/rss', files: [{ ...file, path: 'model.bin' }] });
    try {
      const ours = mkdirp(join(root, 'ours-rss'));
      const plan = planFor(
        { type: 'huggingFace', repo: 'bench/rss', revision: 'main', endpoint: hub.endpoint },
        ours,
      );
      rows.push({ gib, f: await measured(`modelcache fetch, ${gib} GiB`, size, program(plan)) });
      await check(ours, [{ path: 'model.bin', sha256: file.sha256, size }], 'modelcache');
    } finally {
      await hub.close();
      rmSync(file.bytes.file, { force: true });
    }
  }
  const first = rows[0];
  const last = rows.at(-1);
  if (first !== undefined && last !== undefined && last !== first) {
    console.log(
      `  RSS ${first.f.rssMib.toFixed(0)} MiB at ${first.gib} GiB, ${last.f.rssMib.toFixed(0)} MiB at ${last.gib} GiB: ${(last.f.rssMib / first.f.rssMib).toFixed(2)}× for ${(last.gib / first.gib).toFixed(1)}× the size; target ≤ 256 MiB (for 10 GiB): ${Math.max(...rows.map((r) => r.f.rssMib)) <= 256 ? 'met at every size measured' : 'MISSED'}`,
    );
  }
}

async function main(): Promise<void> {
  const root = join(tmpdir(), `modelcache-bench-${process.pid}`);
  const data = join(root, 'data');
  mkdirSync(data, { recursive: true });
  const results: { name: string; figures: Map<string, Figure>; targets: Target[] }[] = [];
  try {
    console.log(
      `modelcache fetch benchmark. Network profile: ${rttMs} ms added before every answer of the test hub and its CDN (one round trip), ${connMiBps} MiB/s per connection (loopback only). Load average at start: ${load()} on ${String(
        (await import('node:os')).cpus().length,
      )} CPUs.`,
    );
    const t = await tools();
    python = t.python;
    setNetworkProfile({ rttMs, bytesPerSecond: connMiBps * MIB });

    let cpuFloor: Figure | undefined;
    if (wanted('large') || wanted('floor')) {
      const large = synth(data, 'large/model.gguf', Math.floor(largeGib * GIB));
      const hubFile = { ...large, path: 'model.gguf' };
      const repoFile = { path: 'model.gguf', sha256: large.sha256, size: large.bytes.size };
      if (wanted('large')) {
        const figures = await hubShape(
          root,
          t,
          'One large file',
          'bench/large',
          [hubFile],
          [repoFile],
        );
        results.push({
          name: 'one large file',
          figures,
          targets: [
            { anchor: 'aria2c -x16', atLeast: 0.9 },
            { anchor: 'hf download', atLeast: 2 },
          ],
        });
      }
      if (wanted('floor')) {
        const hub = await startTestHub({ repo: 'bench/floor', files: [hubFile] });
        try {
          cpuFloor = await floors(root, hubFile, hub, 'bench/floor');
        } finally {
          await hub.close();
        }
      }
      rmSync(join(data, 'large'), { recursive: true, force: true });
    }

    if (wanted('sharded')) {
      const names = Array.from(
        { length: shards },
        (_, i) =>
          `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`,
      );
      const big = names.map((n) => synth(data, `sharded/${n}`, Math.floor(shardMib * MIB)));
      const config = inMemory('config.json', 4096, 1);
      const hubFiles: HubFile[] = [config, ...big.map((s, i) => ({ ...s, path: names[i] ?? '' }))];
      const files: RepoFile[] = [
        config,
        ...big.map((s, i) => ({ path: names[i] ?? '', sha256: s.sha256, size: s.bytes.size })),
      ];
      const figures = await hubShape(root, t, 'Sharded repo', 'bench/sharded', hubFiles, files);
      results.push({ name: 'sharded', figures, targets: [{ anchor: 'fastest', atLeast: 1 }] });
      rmSync(join(data, 'sharded'), { recursive: true, force: true });
    }

    if (wanted('small')) {
      const files = Array.from({ length: smallFiles }, (_, i) =>
        inMemory(`tokenizer/part-${String(i).padStart(4, '0')}.json`, smallSize(i), i),
      );
      const figures = await hubShape(root, t, 'Many small files', 'bench/small', files, files);
      results.push({ name: 'small files', figures, targets: [{ anchor: 'fastest', atLeast: 1 }] });
    }

    if (cpuFloor !== undefined) {
      console.log(
        `\nCPU per GiB against the sha256 + write floor (${cpuFloor.cpuPerGib.toFixed(2)} s/GiB; target ≤ 1.3×)`,
      );
      for (const r of results) {
        const ours = r.figures.get('modelcache');
        if (ours === undefined || r.name === 'small files') continue;
        const x = ours.cpuPerGib / cpuFloor.cpuPerGib;
        console.log(
          `  ${r.name}: ${ours.cpuPerGib.toFixed(2)} s/GiB = ${x.toFixed(2)}× the floor, ${x <= 1.3 ? 'met' : 'MISSED'}`,
        );
      }
    }
    setNetworkProfile(undefined);

    if (wanted('s3prefix') || wanted('s3large')) {
      const moto = await startMoto();
      try {
        const client = await s3Client(moto);
        if (wanted('s3prefix')) {
          const objects = Array.from({ length: s3Objects }, (_, i) =>
            inMemory(
              `shard-${String(Math.floor(i / 100)).padStart(3, '0')}/obj-${String(i).padStart(6, '0')}.bin`,
              s3ObjectKib * KIB,
              i,
            ),
          );
          console.log(
            `\nS3 prefix (moto, loopback, not paced): ${objects.length} objects of ${s3ObjectKib} KiB, ${fmtBytes(objects.length * s3ObjectKib * KIB)}; uploading at ${elapsed()}`,
          );
          await upload(
            client,
            'many',
            objects.map((o) => ({ key: o.path, body: o.bytes as Buffer })),
          );
          const figures = await s3Shape(root, t, moto, 'many', objects, false);
          results.push({ name: 's3 prefix', figures, targets: [{ anchor: 's5cmd', atLeast: 1 }] });
        }
        if (wanted('s3large')) {
          const objSize = Math.floor((s3Gib * GIB) / 4);
          const objects = [1, 2, 3, 4].map((i) => synth(data, `s3/part-${i}.bin`, objSize));
          console.log(
            `\nS3 large objects (moto, loopback, not paced): 4 objects of ${fmtBytes(objSize)}; uploading at ${elapsed()}`,
          );
          await upload(
            client,
            'large',
            objects.map((o) => ({
              key: o.path.slice('s3/'.length),
              body: readFileSync(o.bytes.file),
            })),
          );
          const files = objects.map((o) => ({
            path: o.path.slice('s3/'.length),
            sha256: o.sha256,
            size: objSize,
          }));
          const figures = await s3Shape(root, t, moto, 'large', files, true);
          results.push({ name: 's3 large', figures, targets: [{ anchor: 's5cmd', atLeast: 1 }] });
          await motoRanges(moto, files[0]?.path ?? '', objSize);
        }
        client.destroy();
      } finally {
        await moto.stop();
      }
    }

    if (wanted('rss')) await rssShape(root, data);

    console.log(
      '\nRatios (speed above 1: modelcache is faster; CPU above 1: it uses more per GiB)',
    );
    for (const r of results) ratios(r.name, r.figures, r.targets);
    console.log(`done in ${elapsed()} (load average now ${load()})`);
  } finally {
    setNetworkProfile(undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * What one ranged GET costs moto: the whole object once, then the same bytes as 8 ranges
 * one after another (curl, no hashing). moto reads and copies the whole object for every
 * GET, ranged or not, so its ranges cost as much as whole objects.
 */
async function motoRanges(moto: Moto, key: string, size: number): Promise<void> {
  const url = `${moto.endpoint}/bench/large/${key}`;
  const auth = ['--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', 'bench:bench'];
  console.log(
    `  moto's cost of a range (${fmtBytes(size)} object, curl > /dev/null, one at a time)`,
  );
  await measured('whole object, 1 GET', size, ['curl', '-sf', ...auth, '-o', '/dev/null', url]);
  const part = Math.ceil(size / 8);
  const script = Array.from(
    { length: 8 },
    (_, i) =>
      `curl -sf ${auth.map((a) => `'${a}'`).join(' ')} -r ${i * part}-${Math.min(size, (i + 1) * part) - 1} -o /dev/null '${url}'`,
  ).join(' && ');
  await measured('the same bytes as 8 ranged GETs', size, ['bash', '-c', script]);
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

await main();
