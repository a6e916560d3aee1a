// The server with the fast codec: undecodable bytes answered with a FATAL result carrying the
// tag (and logged without any of the request's values), many concurrent calls of different sizes
// each answered with their own bytes (the serializer reuses one buffer: grpc-js must copy it
// before serializing the next response), and the same answers as with the SDK's ts-proto codec.
import { RunFunctionRequest, RunFunctionResponse } from '@crossplane-org/function-sdk-typescript';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';

import { runFunction } from '../dispatch.js';
import {
  REASON_INTERNAL_ERROR,
  startServer,
  type Codec,
  type RunningServer,
} from '../server/grpc-server.js';
import { createLogger } from '../server/logger.js';
import { midHydration } from '../../test/bench/compose-scenario.js';
import { newRawClient, type RawClient } from '../../test/bench/raw-client.js';
import { toRunFunctionRequest } from '../../test/support/requests.js';

const SECRET = 'c2VudGluZWwtc2VjcmV0LXZhbHVl';

const servers: RunningServer[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close(1000)));
});

async function serve(codec: Codec = 'fast'): Promise<{ client: RawClient; logs: () => string }> {
  const chunks: string[] = [];
  const log = createLogger(
    { debug: true },
    new Writable({
      write(chunk: Buffer, _e, done) {
        chunks.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
  const server = await startServer(
    { address: '127.0.0.1:0', insecure: true, tlsCertsDir: '', maxMessageBytes: 64 * 2 ** 20 },
    runFunction,
    log,
    { codec },
  );
  servers.push(server);
  const client = newRawClient(`127.0.0.1:${String(server.port)}`);
  clients.push(client);
  return { client, logs: () => chunks.join('') };
}

function bytesOf(n: number, tag: string): Buffer {
  return Buffer.from(
    RunFunctionRequest.encode(toRunFunctionRequest(midHydration(n), tag)).finish(),
  );
}

describe('server with the fast codec', () => {
  it('answers undecodable bytes with a FATAL result carrying the tag, logging no values', async () => {
    const { client, logs } = await serve();
    const valid = Buffer.from(
      RunFunctionRequest.encode(
        RunFunctionRequest.fromPartial({
          meta: { tag: 'tag-bad' },
          observed: { composite: { resource: { kind: 'ModelCache', spec: { token: SECRET } } } },
        }),
      ).finish(),
    );
    // Cut inside the observed XR: the tag still reads, the rest does not.
    const bytes = valid.subarray(0, valid.length - 5);

    const rsp = RunFunctionResponse.decode(await client.call(bytes));

    expect(rsp.meta?.tag).toBe('tag-bad');
    expect(rsp.results).toHaveLength(1);
    expect(rsp.results[0]?.severity).toBe(1);
    expect(rsp.results[0]?.reason).toBe(REASON_INTERNAL_ERROR);
    expect(rsp.results[0]?.message).toMatch(
      /^internal error: cannot decode RunFunctionRequest: .*offset \d+/,
    );
    expect(logs()).toContain('cannot decode RunFunction request');
    expect(logs()).not.toContain(SECRET);
  });

  it('answers concurrent calls of different sizes each with its own bytes', async () => {
    const { client } = await serve();
    const requests = [1, 10, 100, 3, 30].map((n) => ({ n, bytes: bytesOf(n, `tag-${String(n)}`) }));
    const expected = new Map<number, Buffer>();
    for (const r of requests) expected.set(r.n, await client.call(r.bytes));
    const calls = Array.from({ length: 60 }, (_, i) => requests[i % requests.length]);
    const answers = await Promise.all(
      calls.map(async (r) => (r ? { n: r.n, rsp: await client.call(r.bytes) } : undefined)),
    );
    for (const a of answers) {
      if (!a) continue;
      expect(a.rsp.equals(expected.get(a.n) ?? Buffer.alloc(0))).toBe(true);
    }
  });

  it('answers as the server with the SDK codec does', async () => {
    const fast = await serve('fast');
    const tsProto = await serve('ts-proto');
    for (const n of [1, 10]) {
      const bytes = bytesOf(n, 'same');
      expect((await fast.client.call(bytes)).equals(await tsProto.client.call(bytes))).toBe(true);
    }
  });
});
