// Small pure pieces of the fetch program: path checks, glob selection, retry policy.
import { describe, expect, it } from 'vitest';

import {
  classify,
  HttpStatusError,
  parseRetryAfter,
  redact,
  TruncatedError,
  type Retry,
} from './errors.js';
import { globFilter, unsafePathReason } from './paths.js';
import { backoffMs, DEFAULT_RETRY } from './retry.js';

describe('unsafePathReason', () => {
  it.each([
    { reason: 'a plain nested path is fine', path: 'a/b/c.bin', expected: undefined },
    { reason: 'dots inside names are fine', path: '..hidden/x..y', expected: undefined },
    { reason: 'absolute', path: '/etc/passwd', expected: 'absolute path' },
    {
      reason: 'parent segment',
      path: 'a/../../x',
      expected: 'path has an empty, "." or ".." segment',
    },
    { reason: 'dot segment', path: './x', expected: 'path has an empty, "." or ".." segment' },
    { reason: 'empty segment', path: 'a//x', expected: 'path has an empty, "." or ".." segment' },
    { reason: 'trailing slash', path: 'a/', expected: 'path has an empty, "." or ".." segment' },
    { reason: 'empty', path: '', expected: 'empty path' },
    { reason: 'NUL byte', path: 'a\0b', expected: 'path contains a NUL byte' },
    {
      reason: 'state dir',
      path: '.modelcache/lock',
      expected: 'path enters the reserved .modelcache/ directory',
    },
    {
      reason: 'overlong segment',
      path: 'x'.repeat(256),
      expected: 'a path segment is longer than 255 bytes',
    },
  ])('$reason', ({ path, expected }) => {
    expect(unsafePathReason(path)).toBe(expected);
  });
});

describe('globFilter (huggingface_hub fnmatch semantics)', () => {
  const paths = [
    'config.json',
    'a/b.json',
    'model.safetensors',
    'onnx/model.onnx',
    'x[1].bin',
    'README.md',
  ];
  it.each([
    {
      reason: '* crosses directories',
      include: ['*.json'],
      exclude: undefined,
      expected: ['config.json', 'a/b.json'],
    },
    {
      reason: 'dir/ means the whole directory',
      include: ['onnx/'],
      exclude: undefined,
      expected: ['onnx/model.onnx'],
    },
    {
      reason: '? is one character',
      include: ['?/b.json'],
      exclude: undefined,
      expected: ['a/b.json'],
    },
    { reason: 'character classes', include: ['x[0-9]*'], exclude: undefined, expected: [] },
    {
      reason: 'negated classes',
      include: ['[!a-z]*'],
      exclude: undefined,
      expected: ['README.md'],
    },
    {
      reason: 'exclude wins',
      include: ['*'],
      exclude: ['*.md', 'onnx/*'],
      expected: ['config.json', 'a/b.json', 'model.safetensors', 'x[1].bin'],
    },
    {
      reason: 'regex characters are literal',
      include: ['x[[]1].bin'],
      exclude: undefined,
      expected: ['x[1].bin'],
    },
  ])('$reason', ({ include, exclude, expected }) => {
    expect(paths.filter(globFilter(include, exclude))).toEqual(expected);
  });
});

const CLASSIFY_CASES: { reason: string; err: unknown; expected: Retry }[] = [
  {
    reason: '429 with Retry-After',
    err: new HttpStatusError(429, 'u', 2000),
    expected: { retry: true, afterMs: 2000 },
  },
  { reason: '503', err: new HttpStatusError(503, 'u'), expected: { retry: true } },
  { reason: '404 is final', err: new HttpStatusError(404, 'u'), expected: { retry: false } },
  {
    reason: 'undici body reset',
    err: Object.assign(new TypeError('terminated'), {
      cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    }),
    expected: { retry: true },
  },
  {
    reason: 'connection refused',
    err: Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }),
    expected: { retry: true },
  },
  { reason: 'truncation', err: new TruncatedError(1, 2), expected: { retry: true } },
  {
    reason: 'AWS SDK 503 with Retry-After',
    err: {
      name: 'SlowDown',
      $metadata: { httpStatusCode: 503 },
      $response: { headers: { 'retry-after': '3' } },
    },
    expected: { retry: true, afterMs: 3000 },
  },
  {
    reason: 'AWS SDK 403 is final',
    err: { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } },
    expected: { retry: false },
  },
  { reason: 'a plain bug is final', err: new RangeError('x'), expected: { retry: false } },
];

describe('retry policy', () => {
  it.each(CLASSIFY_CASES)('classifies $reason', ({ err, expected }) => {
    expect(classify(err)).toEqual(expected);
  });

  it.each([
    { reason: 'delta seconds', value: '120', expected: 120_000 },
    { reason: 'HTTP date', value: new Date(1_000_000 + 5_000).toUTCString(), expected: 5_000 },
    { reason: 'garbage', value: 'soon', expected: undefined },
  ])('parses Retry-After: $reason', ({ value, expected }) => {
    expect(parseRetryAfter(value, 1_000_000)).toBe(expected);
  });

  it('backs off exponentially with jitter, capped, and waits at least what the server asked', () => {
    const opts = { ...DEFAULT_RETRY, baseMs: 1000, maxMs: 8000 };
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(opts, a, undefined, () => 1))).toEqual([
      1000, 2000, 4000, 8000, 8000,
    ]);
    expect([1, 2, 3].map((a) => backoffMs(opts, a, undefined, () => 0))).toEqual([500, 1000, 2000]);
    expect(backoffMs(opts, 1, 30_000, () => 0)).toBe(30_000);
    expect(backoffMs(opts, 1, 10 * 3600_000, () => 0)).toBe(DEFAULT_RETRY.maxRetryAfterMs);
  });

  it('redacts secrets and signed query strings', () => {
    expect(
      redact('GET https://u:p@cdn.example/x?X-Amz-Signature=abc failed with tok-123456', [
        'tok-123456',
      ]),
    ).toBe('GET https://cdn.example/x failed with ***');
  });
});
