// Structured JSON logs: the function runs in a pod whose logs are shipped and queried, and
// Crossplane's own components log JSON with a string level, so ours match.
import { format } from 'node:util';

import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export const LOGGER_NAME = 'function-modelcache';

/** Create the process logger; `destination` lets tests capture lines instead of writing stdout. */
export function createLogger(opts: { debug: boolean }, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: opts.debug ? 'debug' : 'info',
    // Replaces pino's pid/hostname: the pod name already identifies the process.
    base: { name: LOGGER_NAME },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  // Synchronous stdout: lines keep their order and none is lost when the process exits right
  // after logging (an async destination can flush 'stopped' before 'shutting down').
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
}

/**
 * A logger for one RunFunction call. The tag is Crossplane's request hash, so it correlates our
 * lines with Crossplane's debug logs and with repeated calls for the same input.
 */
export function requestLogger(log: Logger, tag: string): Logger {
  return log.child({ tag });
}

/**
 * A console-shaped sink for `grpc.setLogger`: grpc-js otherwise prints plain "E ..." lines to
 * stderr, which break a JSON log pipeline and lose the function's name.
 */
export function grpcLogSink(log: Logger): Pick<Console, 'error' | 'info' | 'debug'> {
  const grpcLog = log.child({ component: 'grpc-js' });
  return {
    error: (message?: unknown, ...params: unknown[]) => {
      grpcLog.error(format(message, ...params));
    },
    info: (message?: unknown, ...params: unknown[]) => {
      grpcLog.info(format(message, ...params));
    },
    debug: (message?: unknown, ...params: unknown[]) => {
      grpcLog.debug(format(message, ...params));
    },
  };
}
