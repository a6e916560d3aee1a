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
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';

import { decodeRunFunctionRequest, peekTag } from '../codec/request.js';
import { encodeRunFunctionResponseView } from '../codec/response.js';
import type { ServerOptions } from './flags.js';
import { requestLogger, type Logger } from './logger.js';
import { serverCredentials } from './tls.js';

/** Composes one response. Synchronous: the Function does no I/O, all state comes in the request. */
export type RunFunctionHandler = (req: RunFunctionRequest, log: Logger) => RunFunctionResponse;

export type StartOptions = Pick<
  ServerOptions,
  'address' | 'insecure' | 'tlsCertsDir' | 'maxMessageBytes'
>;

/**
 * How requests and responses are (de)serialized. `fast` (the default) is the Function's own codec
 * (function/codec): Structs straight to plain JSON, composed resources decoded on first touch and
 * copied through as bytes when untouched. `ts-proto` is the SDK's generated codec, kept for
 * comparison in benchmarks. Handlers see the same RunFunctionRequest either way.
 */
export type Codec = 'fast' | 'ts-proto';

export interface ServerTuning {
  codec?: Codec;
  /**
   * HTTP/2 receive window, per stream and per connection, in bytes (default
   * DEFAULT_FLOW_CONTROL_WINDOW; 0 keeps Node's 64 KiB). A request of a few MiB otherwise crosses
   * in 64 KiB steps, each waiting for a window update to reach the client.
   */
  flowControlWindow?: number;
}

export const DEFAULT_FLOW_CONTROL_WINDOW = 8 * 2 ** 20;

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
  tuning: ServerTuning = {},
): Promise<RunningServer> {
  const credentials = serverCredentials(opts);

  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
  });

  const method = FunctionRunnerServiceService.runFunction;
  const codec = tuning.codec ?? 'fast';
  // The fast serializer returns a view of a buffer the next response reuses: grpc-js copies a
  // serialized message into its own frame before serializing another (see response.ts).
  const serialize: (rsp: RunFunctionResponse) => Buffer =
    codec === 'fast' ? encodeRunFunctionResponseView : method.responseSerialize;
  const service = {
    runFunction: {
      ...method,
      requestDeserialize: codec === 'fast' ? deserializeFast : method.requestDeserialize,
      // Encoding a Struct throws on values JSON cannot hold (bigint, functions). grpc-js would
      // turn that into an INTERNAL status; Crossplane should see a FATAL result instead.
      responseSerialize: (rsp: RunFunctionResponse): Buffer => {
        try {
          return serialize(rsp);
        } catch (err) {
          const tag = rsp.meta?.tag ?? '';
          logger.error({ tag, error: errorFields(err) }, 'cannot encode RunFunction response');
          return serialize(internalErrorResponse(tag, err));
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
    const undecodable = undecodableRequests.get(req);
    if (undecodable !== undefined) {
      log.error({ error: errorFields(undecodable) }, 'cannot decode RunFunction request');
      rsp = internalErrorResponse(tag, undecodable);
    } else {
      try {
        rsp = handler(req, log);
      } catch (err) {
        log.error({ error: errorFields(err) }, 'RunFunction handler failed');
        rsp = internalErrorResponse(tag, err);
      }
    }
    // Summary only: request and response bodies hold observed resources, which can carry secrets.
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
          ...describeComposite(req),
          desiredResources: Object.keys(rsp.desired?.resources ?? {}).length,
          results: rsp.results.length,
        },
        'RunFunction',
      );
    }
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
  widenReceiveWindow(
    server,
    Math.min(tuning.flowControlWindow ?? DEFAULT_FLOW_CONTROL_WINDOW, opts.maxMessageBytes),
    logger,
  );

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

/**
 * Requests whose bytes could not be decoded, with the reason. The deserializer cannot answer
 * itself (grpc-js would send a bare INTERNAL status), so it hands the handler wrapper an empty
 * request carrying only the tag, and the wrapper answers with a FATAL result.
 */
const undecodableRequests = new WeakMap<RunFunctionRequest, unknown>();

function deserializeFast(buf: Buffer): RunFunctionRequest {
  try {
    return decodeRunFunctionRequest(buf);
  } catch (err) {
    const req: RunFunctionRequest = {
      meta: { tag: peekTag(buf), capabilities: [] },
      observed: undefined,
      desired: undefined,
      input: undefined,
      context: undefined,
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- required by the type
      extraResources: {},
      credentials: {},
      requiredResources: {},
      requiredSchemas: {},
    };
    undecodableRequests.set(
      req,
      new Error(`cannot decode RunFunctionRequest: ${errorFields(err).message}`),
    );
    return req;
  }
}

/**
 * grpc-js has no server option for HTTP/2 flow control (its client has
 * `grpc-node.flow_control_window`), so widen each new session's receive windows as it starts.
 * This reaches into grpc-js's HTTP/2 servers (`http2Servers`, grpc-js 1.14): if a later version
 * hides them, nothing happens and the server runs with Node's defaults, logged once.
 */
export function widenReceiveWindow(server: grpc.Server, bytes: number, logger: Logger): void {
  if (bytes <= 65_535) return;
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) {
    logger.debug('cannot widen HTTP/2 receive windows: grpc-js internals changed');
    return;
  }
  for (const h2 of servers.keys()) {
    if (!(h2 instanceof EventEmitter)) continue;
    h2.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: bytes });
        session.setLocalWindowSize(bytes);
      } catch (err) {
        logger.debug({ error: errorFields(err) }, 'cannot widen HTTP/2 receive windows');
      }
    });
  }
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
