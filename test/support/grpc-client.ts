// A FunctionRunnerService client built the way Crossplane builds one (the SDK does not
// export its generated client), for tests and benchmarks that call a real server.
import {
  FunctionRunnerServiceService,
  type RunFunctionRequest,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';

export interface RunnerClient extends grpc.Client {
  runFunction(
    req: RunFunctionRequest,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: (err: grpc.ServiceError | null, rsp?: RunFunctionResponse) => void,
  ): grpc.ClientUnaryCall;
}

const RunnerClientCtor = grpc.makeGenericClientConstructor(
  FunctionRunnerServiceService,
  'FunctionRunnerService',
);

export function newRunnerClient(
  target: string,
  creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): RunnerClient {
  return new RunnerClientCtor(target, creds, options) as unknown as RunnerClient;
}

export function callRunner(
  client: RunnerClient,
  req: RunFunctionRequest,
  timeoutMs = 10_000,
): Promise<RunFunctionResponse> {
  return new Promise((resolve, reject) => {
    client.runFunction(
      req,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, rsp) => {
        if (err) {
          reject(err);
        } else if (rsp === undefined) {
          reject(new Error('no response'));
        } else {
          resolve(rsp);
        }
      },
    );
  });
}
