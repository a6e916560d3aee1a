// A FunctionRunnerService client that sends bytes as they are and returns the response's bytes:
// benchmarks encode their requests once, up front, so the client spends none of the time it
// measures on protobuf, and the figures are the server's (plus the loopback transport).
import { FunctionRunnerServiceService } from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

const RAW_RUNNER = {
  runFunction: {
    path: FunctionRunnerServiceService.runFunction.path,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;

const RawClientCtor = grpc.makeGenericClientConstructor(RAW_RUNNER, 'FunctionRunnerService');

interface RawStub extends grpc.Client {
  runFunction(
    req: Buffer,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: (err: grpc.ServiceError | null, rsp?: Buffer) => void,
  ): grpc.ClientUnaryCall;
}

export interface RawClient {
  /** One RunFunction call with pre-encoded request bytes; resolves with the response bytes. */
  call(req: Buffer, timeoutMs?: number): Promise<Buffer>;
  close(): void;
}

export function newRawClient(
  target: string,
  options: grpc.ChannelOptions = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): RawClient {
  const stub = new RawClientCtor(target, credentials, {
    // The server enforces its own limit; the client sends whatever the benchmark asks.
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...options,
  }) as unknown as RawStub;
  return {
    call: (req, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        stub.runFunction(
          req,
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err, rsp) => {
            if (err) reject(err);
            else if (rsp === undefined) reject(new Error('no response'));
            else resolve(rsp);
          },
        );
      }),
    close: () => {
      stub.close();
    },
  };
}
