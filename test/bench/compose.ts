// npm run bench:compose — RunFunction latency and peak RSS for one ModelCache matching
// 1..1000 clusters mid-hydration, in-process and over real gRPC (loopback, insecure).
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import { Writable } from 'node:stream';
import { runFunction } from '../../function/dispatch.js';
import { startServer } from '../../function/server/grpc-server.js';
import { createLogger } from '../../function/server/logger.js';
import { callRunner, newRunnerClient } from '../support/grpc-client.js';
import { toRunFunctionRequest } from '../support/requests.js';
import { midHydration } from './compose-scenario.js';

const SIZES = (process.env['BENCH_SIZES'] ?? '1,10,100,1000').split(',').map(Number);
const silent = createLogger(
  { debug: false },
  new Writable({
    write: (_c, _e, done) => {
      done();
    },
  }),
);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function iterations(n: number): number {
  return n >= 1000 ? 60 : n >= 100 ? 300 : 1000;
}

async function main(): Promise<void> {
  const server = await startServer(
    { address: '127.0.0.1:0', insecure: true, tlsCertsDir: '', maxMessageBytes: 256 * 2 ** 20 },
    runFunction,
    silent,
  );
  const client = newRunnerClient(`127.0.0.1:${String(server.port)}`, undefined, {
    'grpc.max_send_message_length': 256 * 2 ** 20,
    'grpc.max_receive_message_length': 256 * 2 ** 20,
  });
  let peakRss = process.memoryUsage().rss;
  const sample = (): void => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  };
  const timer = setInterval(sample, 5);
  const rows: {
    n: number;
    bytes: number;
    inP50: number;
    inP99: number;
    grpcP50: number;
    grpcP99: number;
  }[] = [];
  for (const n of SIZES) {
    const req = toRunFunctionRequest(midHydration(n));
    const bytes = RunFunctionRequest.encode(req).finish().length;
    // In process: decode as the server would, then compose and encode, without the network.
    const wire = RunFunctionRequest.encode(req).finish();
    const inProc: number[] = [];
    for (let i = 0; i < iterations(n) + 10; i++) {
      const t = process.hrtime.bigint();
      runFunction(RunFunctionRequest.decode(wire), silent);
      if (i >= 10) inProc.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const overGrpc: number[] = [];
    for (let i = 0; i < iterations(n) + 10; i++) {
      const t = process.hrtime.bigint();
      await callRunner(client, req, 60_000);
      if (i >= 10) overGrpc.push(Number(process.hrtime.bigint() - t) / 1e6);
      sample();
    }
    inProc.sort((a, b) => a - b);
    overGrpc.sort((a, b) => a - b);
    rows.push({
      n,
      bytes,
      inP50: pct(inProc, 50),
      inP99: pct(inProc, 99),
      grpcP50: pct(overGrpc, 50),
      grpcP99: pct(overGrpc, 99),
    });
  }
  clearInterval(timer);
  client.close();
  await server.close();
  console.log('clusters  request      in-process p50/p99 ms   gRPC p50/p99 ms');
  for (const r of rows) {
    console.log(
      `${String(r.n).padStart(8)}  ${(r.bytes / 1024).toFixed(0).padStart(7)} KiB  ${r.inP50.toFixed(2).padStart(9)} / ${r.inP99.toFixed(2).padEnd(9)}  ${r.grpcP50.toFixed(2).padStart(8)} / ${r.grpcP99.toFixed(2)}`,
    );
  }
  const at = (n: number): (typeof rows)[number] | undefined => rows.find((r) => r.n === n);
  const r100 = at(100);
  const r1000 = at(1000);
  if (r100 && r1000) {
    console.log(
      `scaling (gRPC p50 at 1000 / at 100): ${(r1000.grpcP50 / r100.grpcP50).toFixed(2)} (linear = 10)`,
    );
  }
  console.log(`peak RSS: ${(peakRss / 2 ** 20).toFixed(0)} MiB (client and server in one process)`);
}

void main();
