// npm run bench:compose — RunFunction latency and server memory through a Go client configured
// as Crossplane v2.3.4's (test/bench/goclient: grpc-go, 4 MiB receive limit, the request
// marshalled afresh on every call), for the request families in bench-cases.ts.
//
// Calls use mTLS, as Crossplane's always do (certificates made for the run). The Function's
// server runs in a child process of its own, compiled to JavaScript as the image
// runs it, serving gRPC only, so its memory figures are its own. Per case it prints:
//   - Go client: the calls as Crossplane makes them (p50 / p99, or the gRPC error they got);
//   - in-process: decode → compose → encode in a second such process, without the network, of
//     requests as Go marshals them (fresh marshals, so nothing keyed on bytes hits by accident);
//   - transport floor: the same client and requests against a server that answers the same
//     response bytes and does nothing else, once a Go server (the transport plus Crossplane's
//     codec) and once a grpc-js server set up as the Function's (plus Node's transport);
//   - the server's RSS after the case and its peak.
// Both codecs are measured, the hand-written one (function/codec, `fast`) and the SDK's ts-proto
// codec, side by side (issue 12 item 5 decides from these whether the hand-written one stays).
//
// Env: BENCH_SIZES=10,100,1000,5000   BENCH_QUICK=1 a twentieth of the iterations (the CI smoke)
//      BENCH_SCENARIOS=repeat,progress,cold   BENCH_CODECS=fast,ts-proto
//      BENCH_FAMILIES=replica,cache (bench-cases.ts)   BENCH_TLS=0 plaintext instead of mTLS
import { RunFunctionResponse, Severity } from '@crossplane-org/function-sdk-typescript';
import { loadavg } from 'node:os';

import type { Codec } from '../../function/server/grpc-server.js';
import { benchCases, FAMILY_NAMES, type BenchCase, type FamilyName } from './bench-cases.js';
import { SCENARIO_NAMES, type ScenarioName } from './compose-scenario.js';
import { goCall, goFloorServer, goMarshal, type CallResult } from './go-client.js';
import { benchTransport } from './mtls.js';
import { newRawClient } from './raw-client.js';
import { forkServer, type ServerProcess, type ServerStats } from './server-launch.js';
import { mib, percentile } from './stats.js';

const MiB = 2 ** 20;
/** grpc-go's default receive limit, which Crossplane does not raise. */
const GO_RECEIVE_LIMIT = 4 * MiB;

const list = (name: string, fallback: string): string[] =>
  (process.env[name] ?? fallback).split(',').filter(Boolean);

function pick<T extends string>(name: string, all: readonly T[], fallback = all.join(',')): T[] {
  return list(name, fallback).map((v) => {
    if (!(all as readonly string[]).includes(v)) {
      throw new Error(`${name}: unknown value ${v} (${all.join(', ')})`);
    }
    return v as T;
  });
}

const SIZES = list('BENCH_SIZES', '10,100,1000,5000').map(Number);
const QUICK = process.env['BENCH_QUICK'] === '1';
const SCENARIOS = pick<ScenarioName>('BENCH_SCENARIOS', SCENARIO_NAMES);
const CODECS = pick<Codec>('BENCH_CODECS', ['fast', 'ts-proto']);
const FAMILIES = pick<FamilyName>('BENCH_FAMILIES', FAMILY_NAMES);
/** mTLS, as Crossplane always dials Functions; BENCH_TLS=0 measures plaintext. */
const TLS = process.env['BENCH_TLS'] !== '0';

/** Issue 12's memory target on this 2-core machine (latency targets: bench-cases.ts). */
const TARGET_RSS = { clusters: 5000, mib: 200 };

function iterations(bytes: number): number {
  // By request size rather than cluster count: families differ in bytes per cluster.
  const full =
    bytes >= 16 * MiB
      ? 20
      : bytes >= 4 * MiB
        ? 40
        : bytes >= MiB
          ? 100
          : bytes >= 100_000
            ? 300
            : 500;
  return QUICK ? Math.max(10, Math.floor(full / 20)) : full;
}

const warmupFor = (iters: number): number => Math.max(QUICK ? 2 : 5, Math.floor(iters / 10));

interface Row {
  c: BenchCase;
  codec: Codec;
  requestBytes: number;
  responseBytes: number;
  go: CallResult;
  inProcess: number[];
  floorGo?: CallResult;
  floorNode?: CallResult;
  server: ServerStats;
  /** Of the Go marshals of the first request, how many were byte-identical to another. */
  marshal: { copies: number; distinct: number; marshalMs: number; unmarshalMs: number };
}

/** The response must be the real thing, not an error answered fast. */
function checkResponse(c: BenchCase, bytes: Buffer): void {
  const rsp = RunFunctionResponse.decode(bytes);
  const fatal = rsp.results.find((r) => r.severity === Severity.SEVERITY_FATAL);
  const resources = Object.keys(rsp.desired?.resources ?? {}).length;
  if (rsp.meta?.tag !== 'test-tag' || fatal !== undefined || resources < c.minResources) {
    throw new Error(
      `unexpected response to ${c.family} ${c.scenario} at ${String(c.n)} clusters: ${fatal?.message ?? `${String(resources)} resources`}`,
    );
  }
}

interface Servers {
  codec: Codec;
  /** Serves gRPC only, so its memory figures are the Function's. */
  server: ServerProcess;
  /** Runs the in-process timings and the grpc-js floor server. */
  bench: ServerProcess;
  address: string;
}

/** Every case against one server per codec, the codecs in turn on each case (same load). */
async function measure(cases: readonly BenchCase[]): Promise<Row[]> {
  const tls = await benchTransport(TLS);
  const servers: Servers[] = [];
  for (const codec of CODECS) {
    const server = await forkServer({ codec, ...tls.serve });
    servers.push({
      codec,
      server,
      bench: await forkServer({ codec, ...tls.serve }),
      address: `127.0.0.1:${String(server.port)}`,
    });
  }
  const rows: Row[] = [];
  try {
    for (const c of cases) {
      const reqs = c.requests();
      const iters = iterations(reqs[0]?.length ?? 0);
      const warmup = warmupFor(iters);
      // Crossplane marshals a repeated request afresh for every call: four marshals of it.
      const marshals = await goMarshal(reqs, reqs.length === 1 ? 4 : 1);
      for (const [k, { codec, server, bench, address }] of servers.entries()) {
        // Unlimited, unlike the Go client: the response is needed even where Crossplane refuses it.
        const raw = newRawClient(
          address,
          { 'grpc-node.flow_control_window': 8 * MiB, ...tls.rawOptions },
          tls.raw,
        );
        const first = await raw.call(reqs[0] ?? Buffer.alloc(0)).finally(() => {
          raw.close();
        });
        checkResponse(c, first);
        const go = await goCall(address, reqs, { warmup, iterations: iters, ...tls.call });
        const inProcess = await bench.measure(marshals.bytes, warmup, iters);
        let floorGo: CallResult | undefined;
        let floorNode: CallResult | undefined;
        if (k === 0 && c.floor) {
          const floor = await goFloorServer(first, tls.serve.tlsCertsDir);
          try {
            floorGo = await goCall(floor.address, reqs, {
              warmup,
              iterations: iters,
              ...tls.call,
            });
          } finally {
            await floor.stop();
          }
          const nodeFloor = `127.0.0.1:${String(await bench.floor(first))}`;
          floorNode = await goCall(nodeFloor, reqs, { warmup, iterations: iters, ...tls.call });
        }
        const m = marshals.stats[0];
        rows.push({
          c,
          codec,
          requestBytes: go.requestBytes[0] ?? 0,
          responseBytes: first.length,
          go,
          inProcess,
          ...(floorGo ? { floorGo } : {}),
          ...(floorNode ? { floorNode } : {}),
          server: await server.stats(),
          marshal: {
            copies: marshals.stats.reduce((sum, x) => sum + x.copies, 0),
            distinct: marshals.stats.reduce((sum, x) => sum + x.distinct, 0),
            marshalMs: m?.marshalMs ?? NaN,
            unmarshalMs: m?.unmarshalMs ?? NaN,
          },
        });
        // As it goes: a long run's figures are not lost with a late failure.
        console.log(
          `  ${c.key} ${codec}: Go client ${goCell(go)}, in-process ${p50p99(inProcess)}, request ${kib(go.requestBytes[0] ?? 0)}, response ${kib(first.length)}`,
        );
      }
    }
  } finally {
    for (const { server, bench } of servers) {
      await server.stop();
      await bench.stop();
    }
    tls.close();
  }
  return rows;
}

const ms = (v: number | undefined): string =>
  v === undefined || Number.isNaN(v) ? '-' : v.toFixed(2);
const p50p99 = (xs: number[]): string => `${ms(percentile(xs, 50))} / ${ms(percentile(xs, 99))}`;
const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;

/** p50 / p99 of a Go client run, or the error its calls got. */
function goCell(r: CallResult | undefined): string {
  if (!r) return '';
  if (r.latencyMs) return `${ms(r.latencyMs.p50)} / ${ms(r.latencyMs.p99)}`;
  return r.errors.map((e) => e.code).join(',') || 'no calls';
}

function report(rows: Row[]): void {
  const byCodec = new Map<Codec, Row[]>();
  for (const r of rows) byCodec.set(r.codec, [...(byCodec.get(r.codec) ?? []), r]);
  for (const [codec, rs] of byCodec) {
    console.log(`\ncodec: ${codec}    (latencies in ms, p50 / p99; sizes are proto.Size)`);
    console.log(
      [
        'family'.padEnd(12),
        'scenario',
        'clusters',
        '  request',
        ' response',
        '     Go client',
        '  in-process',
        'floor: Go server',
        'grpc-js server',
        'server RSS',
      ].join('  '),
    );
    for (const r of rs) {
      console.log(
        [
          r.c.family.padEnd(12),
          r.c.scenario.padEnd(8),
          String(r.c.n).padStart(8),
          kib(r.requestBytes).padStart(9),
          kib(r.responseBytes).padStart(9),
          goCell(r.go).padStart(14),
          p50p99(r.inProcess).padStart(12),
          goCell(r.floorGo).padStart(16),
          goCell(r.floorNode).padStart(14),
          `${mib(r.server.rss)} MiB`.padStart(10),
        ].join('  '),
      );
    }
    const peak = Math.max(...rs.map((r) => r.server.maxRss));
    console.log(`server process peak RSS (${codec}): ${mib(peak)} MiB`);
    for (const r1000 of rs.filter((r) => r.c.n === 1000)) {
      const r100 = rs.find((r) => r.c.key === r1000.c.key.replace(/\/1000$/, '/100'));
      const a = r100?.go.latencyMs?.p50;
      const b = r1000.go.latencyMs?.p50;
      if (a === undefined || b === undefined) continue;
      console.log(
        `  scaling ${r1000.c.family} ${r1000.c.scenario}, Go client p50 at 1000 / at 100 clusters: ${(b / a).toFixed(1)} (linear: 10)`,
      );
    }
  }
  const errors = rows.filter((r) => r.go.errors.length > 0);
  if (errors.length > 0) console.log('\nerrors the Go client got (as Crossplane would):');
  for (const r of errors) {
    for (const e of r.go.errors) {
      console.log(
        `  ${r.codec} ${r.c.family} ${r.c.scenario} ${String(r.c.n)} clusters: ${e.code}: ${e.message} (${String(e.count)} calls)`,
      );
    }
  }
  console.log('\nGo codec, per request (what Crossplane spends before and after each call):');
  for (const r of rows.filter((x) => x.codec === CODECS[0] && x.c.scenario === 'repeat')) {
    console.log(
      `  ${r.c.family.padEnd(12)} ${String(r.c.n).padStart(6)} clusters: marshal ${ms(r.marshal.marshalMs)} ms, unmarshal ${ms(r.marshal.unmarshalMs)} ms; ${String(r.marshal.distinct)} different byte strings from ${String(r.marshal.copies)} marshals of the same request`,
    );
  }
}

function compareCodecs(rows: Row[]): void {
  const fast = rows.filter((r) => r.codec === 'fast');
  const tsProto = rows.filter((r) => r.codec === 'ts-proto');
  if (fast.length === 0 || tsProto.length === 0) return;
  console.log(
    '\ncodecs side by side (issue 12 item 5): p50 / p99 ms through the Go client, ts-proto ÷ fast',
  );
  for (const f of fast) {
    const t = tsProto.find((x) => x.c.key === f.c.key);
    if (!t) continue;
    const ratio = (a?: number, b?: number): string =>
      a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`;
    console.log(
      [
        `  ${f.c.family.padEnd(12)} ${f.c.scenario.padEnd(8)} ${String(f.c.n).padStart(6)}:`,
        `fast ${goCell(f.go)}`.padEnd(22),
        `ts-proto ${goCell(t.go)}`.padEnd(26),
        `Go client p50 ${ratio(t.go.latencyMs?.p50, f.go.latencyMs?.p50)}`,
        `p99 ${ratio(t.go.latencyMs?.p99, f.go.latencyMs?.p99)},`,
        `in-process p50 ${ratio(percentile(t.inProcess, 50), percentile(f.inProcess, 50))}`,
      ].join(' '),
    );
  }
  const peak = (rs: Row[]): number => Math.max(...rs.map((r) => r.server.maxRss));
  console.log(`  server peak RSS: fast ${mib(peak(fast))} MiB, ts-proto ${mib(peak(tsProto))} MiB`);
}

function verdicts(rows: Row[]): void {
  const met = (ok: boolean): string => (ok ? 'MET' : 'MISSED');
  for (const codec of CODECS) {
    const rs = rows.filter((r) => r.codec === codec);
    console.log(`\ntargets (issue 12), through the Go client, codec ${codec}:`);
    for (const r of rs) {
      const target = r.c.targetP99Ms;
      if (target === undefined) continue;
      const p99 = r.go.latencyMs?.p99;
      console.log(
        `  ${r.c.family} call (${r.c.scenario}) at ${String(r.c.n)} clusters: p99 ${p99 === undefined ? goCell(r.go) : `${ms(p99)} ms`} (target <= ${String(target)} ms) ${met(p99 !== undefined && p99 <= target)}`,
      );
    }
    for (const r of rs) {
      if (r.responseBytes >= GO_RECEIVE_LIMIT) {
        console.log(
          `  ${r.c.family} ${r.c.scenario} at ${String(r.c.n)}: response ${String(r.responseBytes)} bytes >= 4 MiB: Crossplane refuses it`,
        );
      }
    }
    if (rs.some((r) => r.c.n >= TARGET_RSS.clusters)) {
      const peak = Math.max(...rs.map((r) => r.server.maxRss)) / MiB;
      console.log(
        `  server peak RSS through ${String(TARGET_RSS.clusters)} clusters: ${peak.toFixed(0)} MiB (target <= ${String(TARGET_RSS.mib)} MiB) ${met(peak <= TARGET_RSS.mib)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(
    `bench:compose  ${TLS ? 'mTLS' : 'plaintext'}  families ${FAMILIES.join(',')}  sizes ${SIZES.join(',')}  scenarios ${SCENARIOS.join(',')}  codecs ${CODECS.join(',')}  load average at start: ${load()}`,
  );
  const cases = benchCases(FAMILIES, SIZES, SCENARIOS);
  const rows = await measure(cases);
  report(rows);
  compareCodecs(rows);
  verdicts(rows);
  console.log(`\nload average at end: ${load()} (2 cores; figures above ~2 are contended)`);
}

await main();
