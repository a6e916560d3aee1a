// npm run bench:load — 200 concurrent clients send 20,000 RunFunction requests of mixed sizes to
// one server (its own process; this process is the clients), then report errors (must be 0),
// latency, and the server's memory over the run (no growth once warm). Requests above the
// server's size limit, sent during and after the run, must be refused with RESOURCE_EXHAUSTED
// while everything else keeps being served.
//
// Every response is compared byte for byte with the one its request got first (the Function is
// deterministic), so a corrupted or mixed-up response counts as an error.
//
// Env: LOAD_REQUESTS=20000  LOAD_CLIENTS=200  LOAD_LIMIT_MIB=16
import {
  RunFunctionRequest,
  RunFunctionResponse,
  Severity,
} from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';
import { loadavg } from 'node:os';

import type { CoreRequest } from '../../function/core.js';
import { midHydration } from '../bench/compose-scenario.js';
import { newRawClient, type RawClient } from '../bench/raw-client.js';
import { forkServer, type ServerStats } from '../bench/server-launch.js';
import { mib, percentile } from '../bench/stats.js';
import * as f from '../support/fixtures.js';
import { toRunFunctionRequest } from '../support/requests.js';

const REQUESTS = Number(process.env['LOAD_REQUESTS'] ?? '20000');
const CLIENTS = Number(process.env['LOAD_CLIENTS'] ?? '200');
const LIMIT = Number(process.env['LOAD_LIMIT_MIB'] ?? '16') * 2 ** 20;
const WARMUP = Math.floor(REQUESTS / 10);
const SAMPLE_EVERY = Math.max(1, Math.floor(REQUESTS / 10));
const OVERSIZE_AT = [0.25, 0.5, 0.75];

interface Template {
  name: string;
  weight: number;
  bytes: Buffer;
  /** The response it got first; every later one must be identical. */
  expected?: Buffer;
}

function encode(core: CoreRequest, tag: string, resolved = true): Buffer {
  return Buffer.from(RunFunctionRequest.encode(toRunFunctionRequest(core, tag, resolved)).finish());
}

/** The mix: mostly small fleets, some large, a few odd requests (held state, other kinds, bad input). */
function templates(): Template[] {
  const invalid = f.request(
    f.modelCache({
      artifact: { kind: 'Weights', source: { s3: { uri: 'http://not-s3' } } },
      storage: { pvc: { sizeGiB: 1 } },
    }),
    [],
  );
  const cluster: CoreRequest = {
    composite: f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' }),
    observed: {},
    required: {},
    input: undefined,
  };
  return [
    { name: 'modelcache-1', weight: 40, bytes: encode(midHydration(1), 'mc-1') },
    { name: 'modelcache-10', weight: 30, bytes: encode(midHydration(10), 'mc-10') },
    { name: 'modelcache-100', weight: 10, bytes: encode(midHydration(100), 'mc-100') },
    { name: 'modelcache-1000', weight: 0.25, bytes: encode(midHydration(1000), 'mc-1000') },
    { name: 'held-100', weight: 4, bytes: encode(midHydration(100), 'held-100', false) },
    { name: 'inferencecluster', weight: 10, bytes: encode(cluster, 'ic') },
    {
      name: 'first-call',
      weight: 5,
      bytes: encode(f.request(f.modelCache(f.HF_WEIGHTS), []), 'first', false),
    },
    { name: 'invalid', weight: 0.75, bytes: encode(invalid, 'invalid') },
  ];
}

/** A request over the limit: a valid one with an unknown field of padding appended. */
function oversize(base: Buffer): Buffer {
  const pad = LIMIT + 2 ** 20 - base.length;
  const len: number[] = [];
  for (let v = pad; ; v = Math.floor(v / 128)) {
    if (v < 128) {
      len.push(v);
      break;
    }
    len.push((v % 128) | 0x80);
  }
  // Field 15, length-delimited: skipped by any decoder, but the size check comes first.
  return Buffer.concat([base, Buffer.from([0x7a, ...len]), Buffer.alloc(pad, 0x20)]);
}

/** A deterministic pick of templates by weight, so runs are comparable. */
function schedule(ts: Template[], n: number): number[] {
  const total = ts.reduce((a, t) => a + t.weight, 0);
  let seed = 42;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  return Array.from({ length: n }, () => {
    let x = rnd() * total;
    for (let i = 0; i < ts.length; i++) {
      x -= ts[i]?.weight ?? 0;
      if (x < 0) return i;
    }
    return ts.length - 1;
  });
}

function codeOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}

async function main(): Promise<void> {
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(
    `bench:load  ${String(REQUESTS)} requests, ${String(CLIENTS)} concurrent clients, server limit ${mib(LIMIT)} MiB  load average at start: ${load()}`,
  );
  const ts = templates();
  const order = schedule(ts, REQUESTS);
  const big = oversize(ts[2]?.bytes ?? Buffer.alloc(0));
  const server = await forkServer({ maxMessageBytes: LIMIT });
  const target = `127.0.0.1:${String(server.port)}`;
  const memory: { at: number; stats: ServerStats }[] = [{ at: 0, stats: await server.stats() }];

  // The first response to each template is the reference for every later one.
  const probe = newRawClient(target);
  for (const t of ts) t.expected = await probe.call(t.bytes);
  for (const t of ts) {
    const rsp = RunFunctionResponse.decode(t.expected ?? Buffer.alloc(0));
    const fatal = rsp.results.some((r) => r.severity === Severity.SEVERITY_FATAL);
    if (fatal !== (t.name === 'invalid')) throw new Error(`${t.name}: unexpected response`);
  }

  // One connection per client (a local subchannel pool), as separate callers would have.
  const clients: RawClient[] = Array.from({ length: CLIENTS }, () =>
    newRawClient(target, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc-node.flow_control_window': 8 * 2 ** 20,
    }),
  );
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const byTemplate = new Map<string, number[]>();
  const oversizeResults: string[] = [];
  let next = 0;
  let done = 0;
  let warmLive = NaN;
  const pendingSamples: Promise<void>[] = [];
  const started = performance.now();

  const worker = async (client: RawClient): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= REQUESTS) return;
      const t = ts[order[i] ?? 0];
      if (!t) return;
      const t0 = performance.now();
      try {
        const rsp = await client.call(t.bytes, 120_000);
        const ms = performance.now() - t0;
        if (t.expected && !rsp.equals(t.expected)) {
          errors.set('response differs', (errors.get('response differs') ?? 0) + 1);
        } else if (i >= WARMUP) {
          latencies.push(ms);
          const list = byTemplate.get(t.name) ?? [];
          list.push(ms);
          byTemplate.set(t.name, list);
        }
      } catch (err) {
        const key = `code ${String(codeOf(err) ?? '?')}`;
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
      done++;
      if (done % SAMPLE_EVERY === 0) {
        const at = done;
        pendingSamples.push(
          server.stats().then(async (stats) => {
            memory.push({ at, stats });
            if (at === WARMUP) warmLive = (await server.stats(true)).heapUsed;
          }),
        );
      }
      for (const frac of OVERSIZE_AT) {
        if (done === Math.floor(REQUESTS * frac)) {
          pendingSamples.push(
            probe.call(big).then(
              () => {
                oversizeResults.push('accepted (wrong)');
              },
              (err: unknown) => {
                oversizeResults.push(grpc.status[codeOf(err) ?? 2] ?? 'unknown');
              },
            ),
          );
        }
      }
    }
  };
  await Promise.all(clients.map(worker));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(pendingSamples);
  if (!memory.some((m) => m.at === REQUESTS)) {
    memory.push({ at: REQUESTS, stats: await server.stats() });
  }
  const settled = await server.stats(true);

  // After the run: one more oversize request, then a normal one must still be served.
  let after = '';
  try {
    await probe.call(big);
    after = 'accepted (wrong)';
  } catch (err) {
    after = grpc.status[codeOf(err) ?? 2] ?? 'unknown';
  }
  const still = await probe.call(ts[0]?.bytes ?? Buffer.alloc(0));
  const servesAfter = ts[0]?.expected !== undefined && still.equals(ts[0].expected);

  for (const c of clients) c.close();
  probe.close();
  await server.stop();

  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  console.log(
    `\n${String(REQUESTS)} requests in ${seconds.toFixed(1)} s (${(REQUESTS / seconds).toFixed(0)}/s)`,
  );
  console.log(
    `errors: ${String(errorCount)}${errorCount > 0 ? ` (${[...errors].map(([k, v]) => `${k}: ${String(v)}`).join(', ')})` : ''}`,
  );
  console.log(
    `latency after warm-up (${String(latencies.length)} calls): p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${percentile(latencies, 100).toFixed(2)} ms`,
  );
  for (const t of ts) {
    const l = byTemplate.get(t.name) ?? [];
    console.log(
      `  ${t.name.padEnd(17)} ${`${(t.bytes.length / 1024).toFixed(0)} KiB`.padStart(10)}  ${String(l.length).padStart(6)} calls  p50 ${percentile(l, 50).toFixed(2).padStart(7)} ms  p99 ${percentile(l, 99).toFixed(2).padStart(7)} ms`,
    );
  }
  console.log('server memory (RSS / JS heap used), by requests done:');
  memory.sort((a, b) => a.at - b.at);
  for (const m of memory) {
    console.log(
      `  ${String(m.at).padStart(6)}  RSS ${mib(m.stats.rss).padStart(4)} MiB  heap ${mib(m.stats.heapUsed).padStart(4)} MiB${m.at === WARMUP ? '  (end of warm-up)' : ''}`,
    );
  }
  const warm = memory.find((m) => m.at === WARMUP)?.stats;
  const end = memory[memory.length - 1]?.stats;
  if (warm && end) {
    console.log(
      `RSS after warm-up ${mib(warm.rss)} MiB, after all requests ${mib(end.rss)} MiB (${end.rss >= warm.rss ? '+' : ''}${mib(end.rss - warm.rss)} MiB); live JS heap after a full GC: ${mib(warmLive)} MiB after warm-up, ${mib(settled.heapUsed)} MiB at the end; peak RSS ${mib(settled.maxRss)} MiB`,
    );
  }
  console.log(
    `requests over the ${mib(LIMIT)} MiB limit (${mib(big.length)} MiB): during the run ${oversizeResults.join(', ')}; after it ${after}; a normal request after that: ${servesAfter ? 'served' : 'NOT served'}`,
  );
  console.log(`load average at end: ${load()}`);
  const ok =
    errorCount === 0 &&
    servesAfter &&
    after === 'RESOURCE_EXHAUSTED' &&
    oversizeResults.every((r) => r === 'RESOURCE_EXHAUSTED');
  if (!ok) process.exitCode = 1;
}

await main();
