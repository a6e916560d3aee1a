// The Function's gRPC server in a process of its own, for benchmarks (started by forkServer in
// server-launch.ts, compiled to JavaScript as the shipped image runs it). It reports its port,
// then answers messages: `stats` (its memory use), `measure` (time decode, compose and encode
// of given requests' bytes in turn, in this process, without the network) and `floor` (start a
// server beside it that answers with fixed bytes: what the transport alone costs).
import {
  FunctionRunnerServiceService,
  RunFunctionRequest,
  RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';

import { decodeRunFunctionRequest } from '../../function/codec/request.js';
import { encodeRunFunctionResponseView } from '../../function/codec/response.js';
import { runFunction } from '../../function/dispatch.js';
import {
  DEFAULT_FLOW_CONTROL_WINDOW,
  startServer,
  widenReceiveWindow,
  type Codec,
} from '../../function/server/grpc-server.js';
import { serverCredentials } from '../../function/server/tls.js';
import type { FromServer, ServeArgs, ToServer } from './server-launch.js';
import { silentLogger } from '../support/codecs.js';

const silent = silentLogger;

/** One call's work as the server does it, minus the network. */
function perCall(codec: Codec, bytes: Buffer): () => void {
  return codec === 'fast'
    ? () => {
        encodeRunFunctionResponseView(runFunction(decodeRunFunctionRequest(bytes), silent));
      }
    : () => {
        RunFunctionResponse.encode(runFunction(RunFunctionRequest.decode(bytes), silent)).finish();
      };
}

/** Time `iterations` calls after `warmup`, call i sending requests[i % length]. */
function measure(codec: Codec, requests: Buffer[], warmup: number, iterations: number): number[] {
  const runs = requests.map((bytes) => perCall(codec, bytes));
  const samples: number[] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const run = runs[i % runs.length] ?? (() => undefined);
    const t = process.hrtime.bigint();
    run();
    if (i >= warmup) samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return samples;
}

/** The Function's own server credentials: mTLS when given certificates, as Crossplane dials. */
function credentialsOf(args: ServeArgs): grpc.ServerCredentials {
  return serverCredentials({
    insecure: args.tlsCertsDir === undefined,
    tlsCertsDir: args.tlsCertsDir ?? '',
  });
}

/** A server that reads each request and answers `response()`, doing nothing else. */
async function floorServer(args: ServeArgs, response: () => Buffer): Promise<number> {
  const { maxMessageBytes } = args;
  const raw = (b: Buffer): Buffer => b;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  server.addService(
    {
      runFunction: {
        ...FunctionRunnerServiceService.runFunction,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      runFunction: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => {
        callback(null, response());
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentialsOf(args), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  widenReceiveWindow(server, Math.min(DEFAULT_FLOW_CONTROL_WINDOW, maxMessageBytes), silent);
  return port;
}

async function serve(args: ServeArgs): Promise<void> {
  let floorResponse = Buffer.alloc(0);
  let floorPort: Promise<number> | undefined;
  const server = await startServer(
    {
      address: '127.0.0.1:0',
      insecure: args.tlsCertsDir === undefined,
      tlsCertsDir: args.tlsCertsDir ?? '',
      maxMessageBytes: args.maxMessageBytes,
    },
    runFunction,
    silent,
    {
      codec: args.codec,
      ...(args.flowControlWindow !== undefined
        ? { flowControlWindow: args.flowControlWindow }
        : {}),
    },
  );
  const reply = (m: FromServer): void => {
    process.send?.(m);
  };
  process.on('message', (m: ToServer) => {
    switch (m.type) {
      case 'stats': {
        if (m.gc) globalThis.gc?.();
        const mem = process.memoryUsage();
        reply({
          type: 'stats',
          rss: mem.rss,
          maxRss: process.resourceUsage().maxRSS * 1024,
          heapUsed: mem.heapUsed,
          external: mem.external,
        });
        break;
      }
      case 'measure':
        reply({
          type: 'measured',
          samples: measure(
            args.codec,
            m.requests.map((b) => Buffer.from(b)),
            m.warmup,
            m.iterations,
          ),
        });
        break;
      case 'floor':
        floorResponse = Buffer.from(m.response);
        floorPort ??= floorServer(args, () => floorResponse);
        void floorPort.then((port) => {
          reply({ type: 'floor', port });
        });
        break;
      case 'exit':
        void server.close(1000).then(() => process.exit(0));
    }
  });
  // The parent going away (Ctrl-C, a crash) must not leave the server running.
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'listening', port: server.port });
}

if (process.argv[2] === '--serve') {
  await serve(JSON.parse(process.argv[3] ?? '{}') as ServeArgs);
}
