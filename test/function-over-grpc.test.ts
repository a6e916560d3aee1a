// What the Function answers over gRPC: the real dispatch and cores behind the real server,
// called as Crossplane calls it, each whole response compared with a golden (test/golden/grpc/).
// The transport itself is covered by server-transport.test.ts.
import { RunFunctionRequest, RunFunctionResponse } from '@crossplane-org/function-sdk-typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFunction } from '../function/dispatch.js';
import { startServer, type RunningServer } from '../function/server/grpc-server.js';
import { createLogger } from '../function/server/logger.js';
import * as f from './support/fixtures.js';
import { golden } from './support/golden.js';
import { callRunner, newRunnerClient, type RunnerClient } from './support/grpc-client.js';
import { toRunFunctionRequest } from './support/requests.js';

let server: RunningServer;
let client: RunnerClient;

beforeAll(async () => {
  const log = createLogger({ debug: false });
  server = await startServer(
    { address: '127.0.0.1:0', insecure: true, tlsCertsDir: '', maxMessageBytes: 64 * 2 ** 20 },
    runFunction,
    log,
  );
  client = newRunnerClient(`127.0.0.1:${String(server.port)}`);
});

afterAll(async () => {
  client.close();
  await server.close();
});

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const INPUT = { apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1', kind: 'Input', ttlSeconds: 30 };

const cases: { name: string; reason: string; req: RunFunctionRequest }[] = [
  {
    name: 'modelcache-first-call',
    reason:
      'the first call (nothing required yet) returns the requirements, a TTL and no composed resources',
    req: toRunFunctionRequest(f.request(f.modelCache(f.HF_WEIGHTS), [], {}, INPUT), 'first', false),
  },
  {
    name: 'modelcache-two-clusters',
    reason:
      'with clusters resolved, each gets a ModelCacheReplica; the compact status, conditions and events follow',
    req: toRunFunctionRequest(
      f.request(
        f.modelCache(f.HF_WEIGHTS),
        [f.inferenceClusterXR('us-east', NFS), f.inferenceClusterXR('eu-west', NFS)],
        {},
        INPUT,
      ),
      'second',
    ),
  },
  {
    name: 'modelcachereplica-first-call',
    reason:
      'a replica with its parent, cluster and provider config resolved composes its namespace first',
    req: toRunFunctionRequest(
      f.replicaRequest(f.modelCache(f.HF_WEIGHTS), f.inferenceClusterXR('us-east', NFS), {
        input: INPUT,
      }),
      'replica',
    ),
  },
  {
    name: 'inferencecluster-unobserved',
    reason:
      'an InferenceCluster composes an observe-only StorageClass Object and reports its provider config',
    req: toRunFunctionRequest({
      composite: f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' }),
      observed: {},
      required: {},
      input: INPUT,
    }),
  },
  {
    name: 'unknown-kind',
    reason: 'an XR of another kind is refused with a FATAL result that says why',
    req: toRunFunctionRequest({
      composite: {
        apiVersion: 'example.org/v1',
        kind: 'Bucket',
        metadata: { name: 'b' },
        spec: {},
      },
      observed: {},
      required: {},
      input: undefined,
    }),
  },
  {
    name: 'modelcache-invalid',
    reason:
      'an invalid spec is a FATAL result naming the field; desired state is passed through untouched',
    req: toRunFunctionRequest(
      f.request(
        f.modelCache({
          artifact: { kind: 'Weights', source: { s3: { uri: 'http://not-s3' } } },
          storage: { pvc: { sizeGiB: 1 } },
        }),
        [],
      ),
    ),
  },
];

describe('RunFunction over gRPC', () => {
  it.each(cases)('$name: $reason', async ({ name, req }) => {
    const rsp = await callRunner(client, req);
    const wire = RunFunctionResponse.toJSON(rsp);
    expect(wire).toEqual(golden(`grpc/${name}`, wire));
    expect(rsp.meta?.tag).toEqual(req.meta?.tag);
  });

  it('answers identically to the in-process dispatcher (ints arrive as floats and are accepted)', async () => {
    const req = cases[1]?.req ?? RunFunctionRequest.fromPartial({});
    const rsp = await callRunner(client, req);
    const local = runFunction(
      RunFunctionRequest.decode(RunFunctionRequest.encode(req).finish()),
      createLogger({ debug: false }),
    );
    expect(RunFunctionResponse.toJSON(rsp)).toEqual(RunFunctionResponse.toJSON(local));
  });
});
