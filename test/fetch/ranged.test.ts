// One file over several ranged connections: the parts asked for, a part cut mid-range, a
// server that ignores Range, a digest mismatch, resume of parts after SIGKILL, memory
// bounded by the reorder buffer, and a refetch of an unchanged artifact moving no bytes.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { FetchError } from '../../function/fetch/errors.js';
import { Layout } from '../../function/fetch/layout.js';
import type { FetchPlanSource } from '../../function/contract/plan.js';
import { DEFAULT_RANGE_OPTIONS, type RangeOptions } from '../../function/fetch/ranged.js';
import {
  bytes,
  capturedLogger,
  IDENTITY_B,
  planFor,
  run,
  scratch,
  tree,
} from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startTestHub } from '../support/fetch-hub.js';
import { sha256 } from '../support/fetch-serve.js';

const MIB = 1024 * 1024;
const SIZE = 8 * MIB;
const DATA = bytes(SIZE, 47);
const DIGEST = sha256(DATA);
const RANGES: RangeOptions = {
  partBytes: MIB,
  connectionsPerFile: 4,
  maxConnections: 8,
  reorderBytes: 2 * MIB,
};
/** Every part's Range header, in order. */
const ALL_PARTS = Array.from({ length: SIZE / MIB }, (_, i) => partRange(i, MIB, SIZE));

function partRange(i: number, part: number, size: number): string {
  return `bytes=${i * part}-${Math.min(size, (i + 1) * part) - 1}`;
}

let server: HttpTestServer;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  server = await startHttpServer({ '/model.bin': DATA });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.faults.clear();
  server.requests.length = 0;
  for (const c of cleanups.splice(0)) c();
});

function volume(): string {
  const s = scratch();
  cleanups.push(s.cleanup);
  return s.dir;
}

function http(): FetchPlanSource {
  return { type: 'http', url: server.url('/model.bin'), path: 'model.bin', sha256: DIGEST };
}

/** Range headers of the downloads (not the one-byte size probe), sorted. */
function rangesAsked(): (string | undefined)[] {
  return server.requests
    .filter((r) => r.range !== 'bytes=0-0')
    .map((r) => r.range)
    .sort();
}

async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('parallel byte ranges within one file', () => {
  it('fetches each part once, over ranged requests, into one verified file', async () => {
    const target = volume();
    const result = await run(planFor(http(), target), { ranges: RANGES });
    expect([result.outcome, result.bytesFetched, result.bytesResumed]).toEqual([
      'complete',
      SIZE,
      0,
    ]);
    expect(rangesAsked()).toEqual([...ALL_PARTS].sort());
    expect(server.bytesServed('/model.bin')).toBe(SIZE + 1);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });

  it('a part cut mid-range is resumed from where it stopped, asking only for the rest of it', async () => {
    const target = volume();
    const cut = partRange(3, MIB, SIZE);
    server.faults.add('/model.bin', { kind: 'drop', afterBytes: 300_000 }, { range: cut });
    const result = await run(planFor(http(), target), { ranges: RANGES });
    const rest = `bytes=${3 * MIB + 300_000}-${4 * MIB - 1}`;
    expect(rangesAsked()).toEqual([...ALL_PARTS, rest].sort());
    expect(result.bytesFetched).toBe(SIZE);
    expect(server.bytesServed('/model.bin')).toBe(SIZE + 1);
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });

  it('a server that ignores Range (200 with the whole body) gets one stream instead', async () => {
    const target = volume();
    server.faults.add('/model.bin', { kind: 'ignoreRange' }, { sticky: true });
    const { log, lines } = capturedLogger();
    const result = await run(planFor(http(), target), { ranges: RANGES, log });
    expect([result.outcome, result.bytesFetched]).toEqual(['complete', SIZE]);
    expect(lines.map((l) => l['msg'])).toContain(
      'the server ignored a range request; fetching the file over one stream',
    );
    // The last download is the whole file, unranged.
    expect(server.requests.at(-1)).toMatchObject({ range: undefined, status: 200, bytes: SIZE });
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  });

  it('a corrupt byte in one part is still caught by the sha256 of the whole file', async () => {
    const target = volume();
    const at = 5 * MIB + 12_345;
    server.faults.add('/model.bin', { kind: 'corrupt', at }, { sticky: true });
    const bad = Buffer.from(DATA);
    bad[at] = (bad[at] ?? 0) ^ 0xff;
    const err = await run(planFor(http(), target), { ranges: RANGES }).catch((e: unknown) => e);
    expect(err).toEqual(
      new FetchError(`sha256 mismatch: expected ${DIGEST}, got ${sha256(bad)}`, 'model.bin'),
    );
    // Tried twice, in parts both times; nothing corrupt is left to resume from.
    expect(rangesAsked()).toEqual([...ALL_PARTS, ...ALL_PARTS].sort());
    expect(tree(target)).toEqual({});
    expect(existsSync(new Layout(target, planFor(http(), target).identity).part('model.bin'))).toBe(
      false,
    );
  });

  it('a checkpoint that cannot be written stops the file with that error (checkpoints are written off the connections)', async () => {
    const target = volume();
    const plan = planFor(http(), target);
    // Every checkpoint goes through this temporary name first: a directory there refuses it.
    const tmp = `${new Layout(target, plan.identity).checkpoint('model.bin')}.tmp-${process.pid}`;
    mkdirSync(tmp, { recursive: true });
    const err = await run(plan, { ranges: RANGES }).catch((e: unknown) => e);
    expect(err).toEqual(
      new FetchError(`EISDIR: illegal operation on a directory, open '${tmp}'`, 'model.bin'),
    );
  });

  it('a process killed (SIGKILL) mid-file keeps its finished parts; the rerun fetches only the others', async () => {
    const target = volume();
    server.faults.add(
      '/model.bin',
      { kind: 'slow', chunk: 64 * 1024, everyMs: 40 },
      { sticky: true },
    );
    const plan = planFor(http(), target);
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        MODELCACHE_PLAN: JSON.stringify(plan),
        MODELCACHE_FETCH_PART_MIB: '1',
        MODELCACHE_FETCH_CONNECTIONS_PER_FILE: '4',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        resolve();
      });
    });
    const checkpoint = new Layout(target, plan.identity).checkpoint('model.bin');
    const recorded = (): number[] => {
      try {
        return (JSON.parse(readFileSync(checkpoint, 'utf8')) as { parts?: number[] }).parts ?? [];
      } catch {
        return [];
      }
    };
    await until(() => recorded().length >= 2 || child.exitCode !== null);
    child.kill('SIGKILL');
    await exited;
    expect(output).not.toContain('"fetch succeeded"');
    const kept = recorded();
    expect(kept.length).toBeGreaterThanOrEqual(2);
    expect(kept.length).toBeLessThan(SIZE / MIB);

    server.faults.clear();
    server.requests.length = 0;
    const second = await run(plan, { ranges: RANGES });
    expect(second.bytesResumed).toBe(kept.length * MIB);
    expect(second.bytesFetched).toBe(SIZE - kept.length * MIB);
    // Each part not recorded is fetched whole again, from its start; no recorded one is.
    expect(rangesAsked()).toEqual(ALL_PARTS.filter((_, i) => !kept.includes(i)).sort());
    expect(tree(target)).toEqual({ 'model.bin': DIGEST });
  }, 60_000);
});

describe('memory', () => {
  it('stays bounded by the reorder buffer for a file many times its size, with the first part slow', async () => {
    const size = 256 * MIB;
    const dir = volume();
    const file = join(dir, 'big.bin');
    const fd = openSync(file, 'w');
    const block = bytes(MIB, 5);
    for (let i = 0; i < size / MIB; i++) {
      block[0] = i & 0xff; // no two blocks alike
      writeSync(fd, block);
    }
    closeSync(fd);
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256');
    h.update(readFileSync(file));
    const digest = h.digest('hex');
    const big = await startHttpServer({ '/big.bin': { file, size } });
    cleanups.push(() => {
      void big.close();
    });
    // Part 0 trickles while the other seven connections could race to the end of the file.
    big.faults.add(
      '/big.bin',
      { kind: 'slow', chunk: 64 * 1024, everyMs: 20 },
      { range: partRange(0, 4 * MIB, size) },
    );
    const target = volume();
    const plan = planFor(
      { type: 'http', url: big.url('/big.bin'), path: 'big.bin', sha256: digest },
      target,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'function/fetch/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        MODELCACHE_PLAN: JSON.stringify(plan),
        MODELCACHE_FETCH_PART_MIB: '4',
        MODELCACHE_FETCH_CONNECTIONS_PER_FILE: '8',
        MODELCACHE_FETCH_REORDER_MIB: '16',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let peakKiB = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m?.[1] !== undefined) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited between polls
      }
    }, 20);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearInterval(poll);
    expect(code).toBe(0);
    expect(tree(target)).toEqual({ 'big.bin': digest });
    // Node, tsx and the SDKs take ~100 MiB; unbounded, the other parts (252 MiB) would pile up.
    expect(peakKiB / 1024).toBeLessThan(200);
  }, 120_000);
});

describe('a refetch of an unchanged artifact', () => {
  it('moves no bytes: files with the listed size and checksum are re-verified and kept', async () => {
    const weights = bytes(3 * MIB, 9);
    const hub = await startTestHub({
      repo: 'org/model',
      files: [
        { path: 'config.json', bytes: Buffer.from('{"a":1}\n'), lfs: false },
        { path: 'model.safetensors', bytes: weights, lfs: true },
      ],
    });
    cleanups.push(() => {
      void hub.close();
    });
    const target = volume();
    const source: FetchPlanSource = {
      type: 'huggingFace',
      repo: 'org/model',
      revision: 'main',
      endpoint: hub.endpoint,
    };
    const first = await run(planFor(source, target), {
      ranges: { ...DEFAULT_RANGE_OPTIONS, partBytes: MIB },
    });
    expect(first.bytesFetched).toBe(3 * MIB + 8);
    hub.requests.length = 0;
    hub.cdnRequests.length = 0;
    const { log, lines } = capturedLogger();
    const again = await run(planFor(source, target, { identity: IDENTITY_B }), { log });
    expect([again.outcome, again.bytesFetched, again.manifest.files]).toEqual([
      'complete',
      0,
      first.manifest.files,
    ]);
    const served = [...hub.requests, ...hub.cdnRequests]
      .filter((r) => r.path.includes('/resolve/') || r.path.includes('/lfs/'))
      .reduce((n, r) => n + r.bytes, 0);
    expect(served).toBe(0);
    expect(hub.cdnRequests).toEqual([]);
    expect(lines.find((l) => l['msg'] === 'staged')?.['bytesKept']).toBe(3 * MIB + 8);
    expect(tree(target)).toEqual({
      'config.json': sha256('{"a":1}\n'),
      'model.safetensors': sha256(weights),
    });
  });
});
