import { describe, expect, it } from 'vitest';

import {
  DEFAULT_ADDRESS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TLS_CERTS_DIR,
  parseFlags,
  usage,
  type Env,
  type ParseResult,
  type ServerOptions,
} from './flags.js';

const defaults: ServerOptions = {
  address: DEFAULT_ADDRESS,
  insecure: false,
  debug: false,
  tlsCertsDir: DEFAULT_TLS_CERTS_DIR,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
};

function run(overrides: Partial<ServerOptions>): ParseResult {
  return { kind: 'run', options: { ...defaults, ...overrides } };
}

interface Case {
  reason: string;
  argv: string[];
  env?: Env;
  want: ParseResult;
}

const cases: Case[] = [
  {
    reason:
      'no flags and no env gives the runtime-contract defaults (TLS from /tls/server on 9443)',
    argv: [],
    want: run({}),
  },
  {
    reason: 'the default message limit is well above grpc-js 4 MiB so big fleets fit',
    argv: [],
    want: run({ maxMessageBytes: 67_108_864 }),
  },
  {
    reason: '--insecure and --debug are booleans',
    argv: ['--insecure', '--debug'],
    want: run({ insecure: true, debug: true }),
  },
  {
    reason: '-d is short for --debug',
    argv: ['-d'],
    want: run({ debug: true }),
  },
  {
    reason: '--address takes the next argument',
    argv: ['--address', '127.0.0.1:0'],
    want: run({ address: '127.0.0.1:0' }),
  },
  {
    reason: '--address=VALUE form',
    argv: ['--address=[::]:9443'],
    want: run({ address: '[::]:9443' }),
  },
  {
    reason: '--tls-certs-dir takes the next argument',
    argv: ['--tls-certs-dir', '/certs'],
    want: run({ tlsCertsDir: '/certs' }),
  },
  {
    reason: '--tls-certs-dir=DIR form',
    argv: ['--tls-certs-dir=/certs'],
    want: run({ tlsCertsDir: '/certs' }),
  },
  {
    reason: 'TLS_SERVER_CERTS_DIR is used when no flag is given (Crossplane sets it)',
    argv: [],
    env: { TLS_SERVER_CERTS_DIR: '/from-env' },
    want: run({ tlsCertsDir: '/from-env' }),
  },
  {
    reason: 'the flag wins over TLS_SERVER_CERTS_DIR',
    argv: ['--tls-certs-dir', '/from-flag'],
    env: { TLS_SERVER_CERTS_DIR: '/from-env' },
    want: run({ tlsCertsDir: '/from-flag' }),
  },
  {
    reason: 'an empty TLS_SERVER_CERTS_DIR counts as unset',
    argv: [],
    env: { TLS_SERVER_CERTS_DIR: '' },
    want: run({}),
  },
  {
    reason: '--max-message-bytes takes a byte count',
    argv: ['--max-message-bytes', '1048576'],
    want: run({ maxMessageBytes: 1_048_576 }),
  },
  {
    reason: '--max-message-bytes=N form',
    argv: ['--max-message-bytes=2000'],
    want: run({ maxMessageBytes: 2000 }),
  },
  {
    reason: 'MAX_MESSAGE_BYTES is used when no flag is given',
    argv: [],
    env: { MAX_MESSAGE_BYTES: '8388608' },
    want: run({ maxMessageBytes: 8_388_608 }),
  },
  {
    reason: 'the flag wins over MAX_MESSAGE_BYTES, even when the env value is invalid',
    argv: ['--max-message-bytes', '4096'],
    env: { MAX_MESSAGE_BYTES: 'lots' },
    want: run({ maxMessageBytes: 4096 }),
  },
  {
    reason: 'an empty MAX_MESSAGE_BYTES counts as unset',
    argv: [],
    env: { MAX_MESSAGE_BYTES: '' },
    want: run({}),
  },
  {
    reason: 'the largest grpc-representable limit is accepted',
    argv: ['--max-message-bytes', '2147483647'],
    want: run({ maxMessageBytes: 2_147_483_647 }),
  },
  {
    reason: 'all flags together, last value of a repeated flag wins',
    argv: [
      '--insecure',
      '--address',
      'a:1',
      '-d',
      '--address=b:2',
      '--tls-certs-dir',
      '/x',
      '--max-message-bytes=10',
    ],
    want: run({
      insecure: true,
      debug: true,
      address: 'b:2',
      tlsCertsDir: '/x',
      maxMessageBytes: 10,
    }),
  },
  {
    reason: '--help asks for usage',
    argv: ['--help'],
    want: { kind: 'help' },
  },
  {
    reason: '-h asks for usage',
    argv: ['-h'],
    want: { kind: 'help' },
  },
  {
    reason: '--help wins over an otherwise broken command line',
    argv: ['--bogus', '--help'],
    want: { kind: 'help' },
  },
  {
    reason: 'an unknown long flag is an error naming it',
    argv: ['--tls-server-certs-dir', '/x'],
    want: { kind: 'error', error: 'unknown flag --tls-server-certs-dir' },
  },
  {
    reason: 'an unknown --flag=value is an error naming only the flag',
    argv: ['--port=9443'],
    want: { kind: 'error', error: 'unknown flag --port' },
  },
  {
    reason: 'an unknown short flag is an error naming it',
    argv: ['-x'],
    want: { kind: 'error', error: 'unknown flag -x' },
  },
  {
    reason: 'positional arguments are rejected',
    argv: ['serve'],
    want: { kind: 'error', error: 'unexpected argument "serve": this program takes only flags' },
  },
  {
    reason: 'a value flag at the end without a value is an error',
    argv: ['--tls-certs-dir'],
    want: { kind: 'error', error: 'flag --tls-certs-dir needs a value' },
  },
  {
    reason: 'a value flag followed by another flag is missing its value',
    argv: ['--address', '--insecure'],
    want: { kind: 'error', error: 'flag --address needs a value' },
  },
  {
    reason: 'an empty inline value is an error',
    argv: ['--address='],
    want: { kind: 'error', error: 'flag --address needs a value' },
  },
  {
    reason: 'boolean flags take no value',
    argv: ['--insecure=false'],
    want: { kind: 'error', error: 'flag --insecure does not take a value' },
  },
  {
    reason: 'a non-numeric --max-message-bytes is an error quoting it',
    argv: ['--max-message-bytes', '64Mi'],
    want: {
      kind: 'error',
      error: '--max-message-bytes must be a whole number of bytes from 1 to 2147483647, got "64Mi"',
    },
  },
  {
    reason: 'scientific notation is rejected rather than silently accepted',
    argv: ['--max-message-bytes=1e6'],
    want: {
      kind: 'error',
      error: '--max-message-bytes must be a whole number of bytes from 1 to 2147483647, got "1e6"',
    },
  },
  {
    reason: 'zero is not a usable limit',
    argv: ['--max-message-bytes', '0'],
    want: {
      kind: 'error',
      error: '--max-message-bytes must be a whole number of bytes from 1 to 2147483647, got "0"',
    },
  },
  {
    reason: 'a limit beyond int32 is rejected',
    argv: ['--max-message-bytes', '2147483648'],
    want: {
      kind: 'error',
      error:
        '--max-message-bytes must be a whole number of bytes from 1 to 2147483647, got "2147483648"',
    },
  },
  {
    reason: 'an invalid MAX_MESSAGE_BYTES names the env var',
    argv: [],
    env: { MAX_MESSAGE_BYTES: '-1' },
    want: {
      kind: 'error',
      error: 'MAX_MESSAGE_BYTES must be a whole number of bytes from 1 to 2147483647, got "-1"',
    },
  },
];

describe('parseFlags', () => {
  it.each(cases)('$reason', ({ argv, env, want }) => {
    expect(parseFlags(argv, env ?? {})).toEqual(want);
  });

  it('does not modify argv', () => {
    const argv = ['--address', 'a:1', '--insecure'];
    parseFlags(argv, {});
    expect(argv).toEqual(['--address', 'a:1', '--insecure']);
  });
});

describe('usage', () => {
  it('documents every flag, its env var and default', () => {
    expect(usage('function-modelcache')).toBe(
      [
        'Usage: function-modelcache [flags]',
        '',
        'The ModelCache Crossplane composition Function (gRPC server).',
        '',
        'Flags:',
        '  --address HOST:PORT        Address to listen on. Default 0.0.0.0:9443.',
        '  --insecure                 Serve without TLS (local development only).',
        '  --tls-certs-dir DIR        Directory holding tls.crt, tls.key and ca.crt.',
        '                             Env TLS_SERVER_CERTS_DIR. Default /tls/server.',
        '  --max-message-bytes N      Largest gRPC message accepted or sent, in bytes.',
        '                             Env MAX_MESSAGE_BYTES. Default 67108864 (64 MiB).',
        '  -d, --debug                Emit debug logs.',
        '  -h, --help                 Show this help.',
        '',
      ].join('\n'),
    );
  });
});
