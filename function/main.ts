#!/usr/bin/env node
// Entrypoint of the Function's container: flags → logger → gRPC server → wait for a signal.
import * as grpc from '@grpc/grpc-js';

import { runFunction } from './dispatch.js';
import { parseFlags, usage } from './server/flags.js';
import { startServer, type RunningServer } from './server/grpc-server.js';
import { LOGGER_NAME, createLogger, grpcLogSink } from './server/logger.js';

const PROGRAM = LOGGER_NAME;

/** Exit codes: 2 is the shell convention for a bad command line, 1 for a failed start. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

const parsed = parseFlags(process.argv.slice(2), process.env);
if (parsed.kind === 'help') {
  process.stdout.write(usage(PROGRAM));
  process.exit(0);
}
if (parsed.kind === 'error') {
  process.stderr.write(`${PROGRAM}: ${parsed.error}\nTry '${PROGRAM} --help' for usage.\n`);
  process.exit(EXIT_USAGE);
}
const opts = parsed.options;
const log = createLogger({ debug: opts.debug });
grpc.setLogger(grpcLogSink(log));

let server: RunningServer;
try {
  server = await startServer(opts, runFunction, log);
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  // Both: the JSON line for log pipelines, the plain line for someone reading `kubectl logs` or a
  // terminal, where a JSON blob hides the one sentence that matters.
  log.fatal(message);
  process.stderr.write(`${PROGRAM}: ${message}\n`);
  process.exit(EXIT_FAILURE);
}

log.info(
  {
    address: opts.address,
    port: server.port,
    tls: opts.insecure ? 'insecure' : 'mtls',
    ...(opts.insecure ? {} : { tlsCertsDir: opts.tlsCertsDir }),
    maxMessageBytes: opts.maxMessageBytes,
  },
  'listening',
);

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) {
    // A second Ctrl-C means "now": do not wait out the grace period.
    log.warn({ signal }, 'second signal; exiting without waiting for in-flight calls');
    process.exit(EXIT_FAILURE);
  }
  stopping = true;
  log.info({ signal }, 'shutting down');
  server.close().then(
    () => {
      log.info('stopped');
      process.exit(0);
    },
    (err: unknown) => {
      log.fatal({ err }, 'shutdown failed');
      process.exit(EXIT_FAILURE);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
