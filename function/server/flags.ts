// Command-line and environment parsing for the Function's server. Kept pure (argv and env in,
// a value out) so every flag combination is unit-testable without spawning a process.

/** Crossplane dials functions on 9443; listening on all interfaces lets the Service reach the pod. */
export const DEFAULT_ADDRESS = '0.0.0.0:9443';
/** Where Crossplane mounts the function's TLS Secret (tls.crt, tls.key, ca.crt). */
export const DEFAULT_TLS_CERTS_DIR = '/tls/server';
/**
 * grpc-js refuses messages over 4 MiB by default; a ModelCache matching a few thousand clusters
 * sends more than that, so the default leaves a wide margin.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** grpc channel options are 32-bit signed integers; larger values would overflow in the C core. */
export const MAX_MESSAGE_BYTES_LIMIT = 2_147_483_647;

/** Set by Crossplane's function runtime on the function Deployment. */
export const ENV_TLS_SERVER_CERTS_DIR = 'TLS_SERVER_CERTS_DIR';
export const ENV_MAX_MESSAGE_BYTES = 'MAX_MESSAGE_BYTES';

export interface ServerOptions {
  /** host:port to listen on; port 0 picks a free port. */
  address: string;
  /** Serve plaintext gRPC instead of mTLS; for local development and `crossplane render`. */
  insecure: boolean;
  /** Log at debug level. */
  debug: boolean;
  /** Directory holding tls.crt, tls.key and ca.crt; unused when insecure. */
  tlsCertsDir: string;
  /** Largest gRPC message accepted or sent, in bytes. */
  maxMessageBytes: number;
}

export type ParseResult =
  { kind: 'run'; options: ServerOptions } | { kind: 'help' } | { kind: 'error'; error: string };

export type Env = Readonly<Record<string, string | undefined>>;

const BOOLEAN_FLAGS = new Set(['--insecure', '--debug', '-d']);
const VALUE_FLAGS = new Set(['--address', '--tls-certs-dir', '--max-message-bytes']);
const HELP_FLAGS = new Set(['--help', '-h']);

/** The text printed for --help. */
export function usage(program: string): string {
  return [
    `Usage: ${program} [flags]`,
    '',
    'The ModelCache Crossplane composition Function (gRPC server).',
    '',
    'Flags:',
    `  --address HOST:PORT        Address to listen on. Default ${DEFAULT_ADDRESS}.`,
    '  --insecure                 Serve without TLS (local development only).',
    `  --tls-certs-dir DIR        Directory holding tls.crt, tls.key and ca.crt.`,
    `                             Env ${ENV_TLS_SERVER_CERTS_DIR}. Default ${DEFAULT_TLS_CERTS_DIR}.`,
    '  --max-message-bytes N      Largest gRPC message accepted or sent, in bytes.',
    `                             Env ${ENV_MAX_MESSAGE_BYTES}. Default ${DEFAULT_MAX_MESSAGE_BYTES} (64 MiB).`,
    '  -d, --debug                Emit debug logs.',
    '  -h, --help                 Show this help.',
    '',
  ].join('\n');
}

/**
 * Parse the server's flags. Flags win over environment variables; empty environment variables
 * count as unset because Kubernetes manifests often template them to "".
 */
export function parseFlags(argv: readonly string[], env: Env): ParseResult {
  // --help wins wherever it appears, so a user can always get usage even with a broken command line.
  if (argv.some((arg) => HELP_FLAGS.has(arg))) {
    return { kind: 'help' };
  }

  let address = DEFAULT_ADDRESS;
  let insecure = false;
  let debug = false;
  let tlsCertsDirFlag: string | undefined;
  let maxMessageBytesFlag: string | undefined;

  const rest = [...argv];
  for (let arg = rest.shift(); arg !== undefined; arg = rest.shift()) {
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);

    if (BOOLEAN_FLAGS.has(name)) {
      if (inline !== undefined) {
        return { kind: 'error', error: `flag ${name} does not take a value` };
      }
      if (name === '--insecure') {
        insecure = true;
      } else {
        debug = true;
      }
      continue;
    }

    if (VALUE_FLAGS.has(name)) {
      let value = inline;
      if (value === undefined) {
        const next = rest[0];
        // A following flag means the value was forgotten; `--flag=-x` still allows odd values.
        if (next !== undefined && !next.startsWith('-')) {
          value = next;
          rest.shift();
        }
      }
      if (value === undefined || value === '') {
        return { kind: 'error', error: `flag ${name} needs a value` };
      }
      if (name === '--address') {
        address = value;
      } else if (name === '--tls-certs-dir') {
        tlsCertsDirFlag = value;
      } else {
        maxMessageBytesFlag = value;
      }
      continue;
    }

    if (arg.startsWith('-')) {
      return { kind: 'error', error: `unknown flag ${name}` };
    }
    return { kind: 'error', error: `unexpected argument "${arg}": this program takes only flags` };
  }

  const tlsCertsDir =
    tlsCertsDirFlag ?? nonEmpty(env[ENV_TLS_SERVER_CERTS_DIR]) ?? DEFAULT_TLS_CERTS_DIR;

  let maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  const rawMax =
    maxMessageBytesFlag !== undefined
      ? { source: '--max-message-bytes', value: maxMessageBytesFlag }
      : envEntry(env, ENV_MAX_MESSAGE_BYTES);
  if (rawMax !== undefined) {
    const parsed = parseByteCount(rawMax.value);
    if (parsed === undefined) {
      return {
        kind: 'error',
        error: `${rawMax.source} must be a whole number of bytes from 1 to ${MAX_MESSAGE_BYTES_LIMIT}, got "${rawMax.value}"`,
      };
    }
    maxMessageBytes = parsed;
  }

  return { kind: 'run', options: { address, insecure, debug, tlsCertsDir, maxMessageBytes } };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function envEntry(env: Env, name: string): { source: string; value: string } | undefined {
  const value = nonEmpty(env[name]);
  return value === undefined ? undefined : { source: name, value };
}

function parseByteCount(raw: string): number | undefined {
  // Digits only: Number() would also accept "1e6", "0x10" and " 12 ", which hide typos.
  if (!/^[0-9]+$/.test(raw)) {
    return undefined;
  }
  const value = Number(raw);
  return value >= 1 && value <= MAX_MESSAGE_BYTES_LIMIT ? value : undefined;
}
