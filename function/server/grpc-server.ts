// The gRPC server Crossplane calls. Replaces the SDK's serve(): it raises the message size limit,
// enforces mTLS, and turns every handler failure into a FATAL result instead of a gRPC error or
// a crashed process, because a crash would take down every XR's reconcile, not just one.
import {
  FunctionRunnerServiceService,
  RunFunctionResponse,
  Severity,
  type RunFunctionRequest,
} from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';

import type { ServerOptions } from './flags.js';
import { requestLogger, type Logger } from './logger.js';
import { serverCredentials } from './tls.js';

/** Composes one response. Synchronous: the Function does no I/O, all state comes in the request. */
export type RunFunctionHandler = (req: RunFunctionRequest, log: Logger) => RunFunctionResponse;

export type StartOptions = Pick<
  ServerOptions,
  'address' | 'insecure' | 'tlsCertsDir' | 'maxMessageBytes'
>;

export interface RunningServer {
  /** The bound port; differs from the address when it asked for port 0. */
  port: number;
  /** Stop accepting calls, let in-flight ones finish for up to `graceMs`, then cut connections. */
  close(graceMs?: number): Promise<void>;
}

/** Well inside Kubernetes' default 30 s termination grace period. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** Kubernetes truncates event messages at 1 KiB; results become events. */
const MAX_ERROR_MESSAGE_CHARS = 900;

export const REASON_INTERNAL_ERROR = 'InternalError';

/**
 * The response sent when composing failed. Desired state is left out on purpose: a FATAL result
 * makes Crossplane discard it anyway, and the handler may have left it half-written (or
 * unencodable, since the SDK's `to()` aliases the request's desired state).
 */
export function internalErrorResponse(tag: string, err: unknown): RunFunctionResponse {
  let message = err instanceof Error ? err.message : String(err);
  if (message.length > MAX_ERROR_MESSAGE_CHARS) {
    message = `${message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…`;
  }
  return {
    meta: { tag, ttl: undefined },
    desired: undefined,
    results: [
      {
        severity: Severity.SEVERITY_FATAL,
        message: `internal error: ${message}`,
        reason: REASON_INTERNAL_ERROR,
        target: undefined,
      },
    ],
    context: undefined,
    requirements: undefined,
    conditions: [],
    output: undefined,
  };
}

/** Bind the server and start serving; rejects if the certificates or the address are unusable. */
export async function startServer(
  opts: StartOptions,
  handler: RunFunctionHandler,
  logger: Logger,
): Promise<RunningServer> {
  const credentials = serverCredentials(opts);

  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
  });

  const method = FunctionRunnerServiceService.runFunction;
  const service = {
    runFunction: {
      ...method,
      // Encoding a Struct throws on values JSON cannot hold (bigint, functions). grpc-js would
      // turn that into an INTERNAL status; Crossplane should see a FATAL result instead.
      responseSerialize: (rsp: RunFunctionResponse): Buffer => {
        try {
          return method.responseSerialize(rsp);
        } catch (err) {
          const tag = rsp.meta?.tag ?? '';
          logger.error({ tag, error: errorFields(err) }, 'cannot encode RunFunction response');
          return method.responseSerialize(internalErrorResponse(tag, err));
        }
      },
    },
  } satisfies grpc.ServiceDefinition;

  const runFunction: grpc.handleUnaryCall<RunFunctionRequest, RunFunctionResponse> = (
    call,
    callback,
  ) => {
    const req = call.request;
    const tag = req.meta?.tag ?? '';
    const log = requestLogger(logger, tag);
    const started = performance.now();
    let rsp: RunFunctionResponse;
    try {
      rsp = handler(req, log);
    } catch (err) {
      log.error({ error: errorFields(err) }, 'RunFunction handler failed');
      rsp = internalErrorResponse(tag, err);
    }
    // Summary only: request and response bodies hold observed resources, which can carry secrets.
    log.debug(
      {
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
        ...describeComposite(req),
        desiredResources: Object.keys(rsp.desired?.resources ?? {}).length,
        results: rsp.results.length,
      },
      'RunFunction',
    );
    callback(null, rsp);
  };

  server.addService(service, { runFunction });

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(opts.address, credentials, (err, boundPort) => {
        if (err) {
          reject(err);
        } else {
          resolve(boundPort);
        }
      });
    });
  } catch (err) {
    server.forceShutdown();
    throw new Error(`cannot listen on ${opts.address}: ${errorFields(err).message}`);
  }

  let closing: Promise<void> | undefined;
  const close = (graceMs = DEFAULT_SHUTDOWN_GRACE_MS): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        logger.warn({ graceMs }, 'in-flight calls did not finish in time; closing connections');
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return closing;
  };

  return { port, close };
}

/** Identify the XR in logs without logging it: apiVersion/kind and name are not sensitive. */
function describeComposite(req: RunFunctionRequest): {
  xrKind?: string;
  xrName?: string;
  xrNamespace?: string;
} {
  const xr: unknown = req.observed?.composite?.resource;
  if (!isRecord(xr)) {
    return {};
  }
  const metadata = isRecord(xr.metadata) ? xr.metadata : {};
  const out: { xrKind?: string; xrName?: string; xrNamespace?: string } = {};
  if (typeof xr.kind === 'string') out.xrKind = xr.kind;
  if (typeof metadata.name === 'string') out.xrName = metadata.name;
  if (typeof metadata.namespace === 'string') out.xrNamespace = metadata.namespace;
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Only type, message and stack: pino's default error serializer also copies enumerable
 * properties, which on some errors (validation issues, HTTP errors) carry input data.
 */
function errorFields(err: unknown): { type: string; message: string; stack?: string } {
  if (err instanceof Error) {
    return err.stack === undefined
      ? { type: err.name, message: err.message }
      : { type: err.name, message: err.message, stack: err.stack };
  }
  return { type: typeof err, message: String(err) };
}
