// `npm run bench:fetch`: throughput of the fetch program over loopback next to the
// official `hf download` on the same synthetic repo, and a raw baseline (curl piped
// through sha256sum to disk), as ratios from one run. Also S3 (moto) next to curl.
//
//   BENCH_GIB (default 2)      size of the synthetic Hugging Face repo
//   BENCH_S3_GIB (default 1)   size of the S3 set (moto keeps objects in memory)
// Not a test: numbers depend on the machine; the ratios are what to read.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

import { planFor } from '../support/fetch-harness.js';
import { startTestHub, type HubFile } from '../support/fetch-hub.js';
import { pythonTool, startMoto } from '../support/fetch-python.js';

const exec = promisify(execFile);
/** The built program as the Job runs it (npm run bench:fetch builds first); tsx otherwise. */
const BUILT = 'dist/function/fetch/main.js';
const PROGRAM = existsSync(BUILT) ? [BUILT] : ['--import', 'tsx', 'function/fetch/main.ts'];
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const hfGib = Number(process.env['BENCH_GIB'] ?? '2');
const s3Gib = Number(process.env['BENCH_S3_GIB'] ?? '1');
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0)}s`;

function synth(dir: string, name: string, size: number): HubFile & { sha256: string } {
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

async function timed(label: string, bytes: number, fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const mbps = bytes / MIB / s;
  console.log(
    `  ${label.padEnd(34)} ${s.toFixed(2).padStart(7)} s  ${mbps.toFixed(0).padStart(6)} MiB/s`,
  );
  return mbps;
}

function runProgram(plan: unknown, env: NodeJS.ProcessEnv = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, PROGRAM, {
      env: {
        PATH: process.env['PATH'] ?? '',
        NODE_NO_WARNINGS: '1',
        MODELCACHE_PLAN: JSON.stringify(plan),
        ...env,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`fetch program exited ${String(code)}`));
    });
  });
}

/** curl | tee file | sha256sum for every URL at once: the raw floor of fetch + hash + write. */
async function curlBaseline(urls: { url: string; out: string }[], curlArgs = ''): Promise<void> {
  const script = urls
    .map(
      (_, i) =>
        `(set -o pipefail; curl -sfL ${curlArgs} "$U${i}" | tee "$O${i}" | sha256sum > "$O${i}.sha256") & P${i}=$!`,
    )
    .join('\n');
  const waits = urls.map((_, i) => `wait $P${i}`).join('\n');
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '' };
  urls.forEach((u, i) => {
    env[`U${i}`] = u.url;
    env[`O${i}`] = u.out;
  });
  await exec('bash', ['--norc', '--noprofile', '-c', `set -e\n${script}\n${waits}`], { env });
  for (const u of urls) {
    const got = readFileSync(`${u.out}.sha256`, 'utf8').split(' ')[0];
    if (got !== (await sha(u.out)))
      throw new Error(`raw baseline: ${u.url} wrote a different file`);
  }
}

async function sha(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

async function main(): Promise<void> {
  const root = join(tmpdir(), `modelcache-bench-${process.pid}`);
  const data = join(root, 'data');
  mkdirSync(data, { recursive: true });
  try {
    console.log(
      `modelcache fetch benchmark: ${hfGib} GiB Hugging Face repo, ${s3Gib} GiB S3 set, loopback`,
    );
    const shard = Math.floor((hfGib * GIB) / 4);
    const files = [
      synth(data, 'config.json', 4096),
      ...[1, 2, 3, 4].map((i) => synth(data, `model-0000${i}-of-00004.safetensors`, shard)),
    ];
    const total = files.reduce((n, f) => n + (f.bytes as { size: number }).size, 0);
    const hub = await startTestHub({ repo: 'bench/synthetic', files });
    const hf = pythonTool('hf');

    console.log(`\nHugging Face (${(total / GIB).toFixed(2)} GiB, ${files.length} files)`);
    const ours = await timed('modelcache fetch (huggingFace)', total, () =>
      runProgram(
        planFor(
          {
            type: 'huggingFace',
            repo: 'bench/synthetic',
            revision: 'main',
            endpoint: hub.endpoint,
          },
          mkdirp(join(root, 'ours')),
        ),
      ),
    );
    const theirs = await timed('hf download', total, () =>
      exec(hf, ['download', 'bench/synthetic', '--local-dir', mkdirp(join(root, 'hf'))], {
        env: {
          PATH: process.env['PATH'] ?? '',
          HOME: root,
          HF_HOME: join(root, 'hf-home'),
          HF_ENDPOINT: hub.endpoint,
          HF_HUB_DISABLE_TELEMETRY: '1',
          HF_HUB_DISABLE_XET: '1',
        },
      }),
    );
    const rawDir = mkdirp(join(root, 'raw'));
    const raw = await timed('curl | sha256sum > file (raw)', total, () =>
      curlBaseline(
        files.map((f, i) => ({
          url: f.lfs
            ? `${hub.cdn}/lfs/${f.sha256}?X-Amz-Signature=x`
            : `${hub.endpoint}/bench/synthetic/resolve/${hub.commit}/${f.path}`,
          out: join(rawDir, String(i)),
        })),
      ),
    );
    for (const f of files) {
      if ((await sha(join(root, 'ours', f.path))) !== f.sha256)
        throw new Error(`ours: ${f.path} differs`);
    }
    await hub.close();
    rmSync(join(root, 'hf'), { recursive: true, force: true });
    rmSync(rawDir, { recursive: true, force: true });
    rmSync(join(root, 'ours'), { recursive: true, force: true });

    console.log(`\nS3 (moto, ${s3Gib} GiB, 4 objects; uploading at ${elapsed()})`);
    const moto = await startMoto();
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
    const s3Total = objSize * 4;
    const oursS3 = await timed('modelcache fetch (s3)', s3Total, () =>
      runProgram(
        planFor(
          {
            type: 's3',
            bucket: 'bench',
            prefix: 'set',
            endpoint: moto.endpoint,
            credentialsFromEnv: true,
          },
          mkdirp(join(root, 'ours-s3')),
        ),
        { AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' },
      ),
    );
    const rawS3Dir = mkdirp(join(root, 'raw-s3'));
    const rawS3 = await timed('curl | sha256sum > file (raw)', s3Total, () =>
      curlBaseline(
        objects.map((o, i) => ({
          url: `${moto.endpoint}/bench/set/${o.path}`,
          out: join(rawS3Dir, String(i)),
        })),
        '--aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench',
      ),
    );
    await moto.stop();

    console.log('\nratios (higher is faster for modelcache)');
    console.log(`  huggingFace: modelcache / hf download = ${(ours / theirs).toFixed(2)}`);
    console.log(`  huggingFace: modelcache / raw curl     = ${(ours / raw).toFixed(2)}`);
    console.log(`  s3:          modelcache / raw curl     = ${(oursS3 / rawS3).toFixed(2)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

await main();
