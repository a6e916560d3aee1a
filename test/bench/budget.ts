// npm run bench:budget — issue 12 item 3: the byte budgets of a cache matching 1,000, 5,000 and
// 10,000 clusters, against the two limits Crossplane's platform imposes:
//   - every Function response under 4 MiB, as received by a Go client configured as Crossplane's
//     (test/bench/goclient: grpc-go's default receive limit, which Crossplane does not raise);
//   - the ModelCache object under etcd's 1.5 MiB request limit, as the API server stores it:
//     custom resources are stored as JSON, with their status, Crossplane's
//     spec.crossplane.resourceRefs (one per composed resource) and managedFields.
// Requests are the benchmarks' mid-hydration scenario (compose-scenario.ts), which every
// replica reports into. Prints bytes per cluster and where each limit falls at that rate.
//
// Env: BUDGET_SIZES=1000,5000,10000
import { RunFunctionResponse } from '@crossplane-org/function-sdk-typescript';
import { loadavg } from 'node:os';

import type { Json } from '../../function/k8s/object.js';
import { cacheScenario, encodeRequest } from './compose-scenario.js';
import { goCall, type CallOutcome } from './go-client.js';
import { newRawClient } from './raw-client.js';
import { forkServer } from './server-launch.js';

const SIZES = (process.env['BUDGET_SIZES'] ?? '1000,5000,10000').split(',').map(Number);
const MiB = 2 ** 20;
const GRPC_LIMIT = 4 * MiB;
/** etcd's default --max-request-bytes; the key and the request's framing share it. */
const ETCD_LIMIT = 1.5 * MiB;
const ETCD_KEY = '/registry/modelplane.ai/modelcaches/team-a/llama';

const json = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));
const kb = (b: number): string => `${(b / 1000).toFixed(1)} kB`;
const per = (b: number, n: number): string => `${(b / n).toFixed(0)} B/cluster`;
/** Clusters at which `bytes` measured at `n` reach `limit`, growing linearly. */
const reach = (bytes: number, n: number, limit: number): string =>
  `~${String(Math.floor((limit / bytes) * n))} clusters`;
const verdict = (bytes: number, limit: number): string =>
  bytes < limit ? 'within' : 'OVER THE LIMIT';

interface Budget {
  n: number;
  cacheRequest: number;
  cacheResponse: CallOutcome;
  replicaRequest: number;
  replicaResponse: CallOutcome;
  /** A steady replica's call: no required resource, so no parent. */
  steadyRequest: number;
  steadyResponse: CallOutcome;
  etcd: { total: number; status: number; resourceRefs: number; managedFields: number };
  replicaEtcd: number;
}

function responseSize(r: CallOutcome, fallback: Buffer): number {
  // Go's proto.Size when it took the response; the bytes the server sent when it refused them.
  return r.responseBytes[0] !== undefined && r.responseBytes[0] >= 0
    ? r.responseBytes[0]
    : fallback.length;
}

async function main(): Promise<void> {
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(`bench:budget  sizes ${SIZES.join(',')}  load average at start: ${load()}`);
  const server = await forkServer({});
  const address = `127.0.0.1:${String(server.port)}`;
  const raw = newRawClient(address, { 'grpc-node.flow_control_window': 8 * MiB });
  const rows: { b: Budget; cacheBytes: number; replicaBytes: number; steadyBytes: number }[] = [];
  try {
    for (const n of SIZES) {
      const s = cacheScenario(n);
      const cacheReq = encodeRequest(s.cacheRequest());
      const replicaReq = encodeRequest(s.replica(0).request);
      const steadyCall = s.steadyReplica(0);
      if (Object.keys(steadyCall.response.requirements).length !== 0) {
        throw new Error('the steady replica still asks for its inputs');
      }
      const steadyReq = encodeRequest(steadyCall.request);
      // Unlimited: the response's size is wanted even where the Go client refuses it.
      const cacheRaw = await raw.call(cacheReq);
      const replicaRaw = await raw.call(replicaReq);
      const cacheResponse = await goCall(address, [cacheReq], { warmup: 0, iterations: 2 });
      const replicaResponse = await goCall(address, [replicaReq], { warmup: 0, iterations: 2 });
      const steadyResponse = await goCall(address, [steadyReq], { warmup: 0, iterations: 2 });
      const decoded = RunFunctionResponse.decode(cacheRaw);
      if (Object.keys(decoded.desired?.resources ?? {}).length !== n) {
        throw new Error(`the ModelCache call at ${String(n)} clusters composed no replica each`);
      }
      const stored = s.cacheStored;
      const meta = stored['metadata'] as Json;
      const spec = stored['spec'] as Json;
      const b: Budget = {
        n,
        cacheRequest: cacheReq.length,
        cacheResponse,
        replicaRequest: replicaReq.length,
        replicaResponse,
        steadyRequest: steadyReq.length,
        steadyResponse,
        etcd: {
          total: json(stored) + ETCD_KEY.length,
          status: json(stored['status']),
          resourceRefs: json((spec['crossplane'] as Json)['resourceRefs']),
          managedFields: json(meta['managedFields']),
        },
        replicaEtcd: json(s.replica(0).request.composite),
      };
      rows.push({
        b,
        cacheBytes: responseSize(cacheResponse, cacheRaw),
        replicaBytes: responseSize(replicaResponse, replicaRaw),
        steadyBytes: responseSize(steadyResponse, Buffer.alloc(0)),
      });
      process.stdout.write('.');
    }
  } finally {
    raw.close();
    await server.stop();
  }
  process.stdout.write('\n');

  console.log('\nFunction responses through the Crossplane-configured Go client (limit 4 MiB):');
  for (const { b, cacheBytes, replicaBytes, steadyBytes } of rows) {
    const err = (r: CallOutcome): string =>
      r.errors.map((e) => ` — ${e.code}: ${e.message}`).join('') || ' — received';
    console.log(
      `  ${String(b.n).padStart(6)} clusters  ModelCache call: request ${kb(b.cacheRequest)}, response ${kb(cacheBytes)} (${per(cacheBytes, b.n)}), ${verdict(cacheBytes, GRPC_LIMIT)}${err(b.cacheResponse)}`,
    );
    console.log(
      `  ${' '.repeat(15)}replica call:    request ${kb(b.replicaRequest)}, response ${kb(replicaBytes)}, ${verdict(replicaBytes, GRPC_LIMIT)}${err(b.replicaResponse)}`,
    );
    console.log(
      `  ${' '.repeat(15)}steady replica:  request ${kb(b.steadyRequest)}, response ${kb(steadyBytes)}, ${verdict(steadyBytes, GRPC_LIMIT)}${err(b.steadyResponse)}`,
    );
  }
  console.log(
    '\nModelCache object as etcd stores it (JSON: status, spec.crossplane.resourceRefs, managedFields; limit 1.5 MiB):',
  );
  for (const { b } of rows) {
    const e = b.etcd;
    console.log(
      `  ${String(b.n).padStart(6)} clusters  ${kb(e.total)} (${per(e.total, b.n)}): status ${kb(e.status)}, resourceRefs ${kb(e.resourceRefs)}, managedFields ${kb(e.managedFields)}; ${verdict(e.total, ETCD_LIMIT)}`,
    );
  }
  const last = rows[rows.length - 1];
  if (last) {
    const { b, cacheBytes } = last;
    console.log(
      `\nat the measured rate: the ModelCache response reaches 4 MiB at ${reach(cacheBytes, b.n, GRPC_LIMIT)}, the ModelCache object 1.5 MiB at ${reach(b.etcd.total, b.n, ETCD_LIMIT)}; a replica object is ${kb(b.replicaEtcd)} in etcd`,
    );
    console.log(
      `a replica call that reads its parent carries it: its request grows by ${per(b.replicaRequest, b.n)} of the cache, ${kb(b.replicaRequest)} at ${String(b.n)} clusters; a steady replica's does not (${kb(b.steadyRequest)}), so a round of N steady replica calls moves ${kb(b.steadyRequest * b.n)} instead of ${kb(b.replicaRequest * b.n)}`,
    );
  }
  console.log(`load average at end: ${load()}`);
}

await main();
