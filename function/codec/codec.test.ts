// The Function's codec against the SDK's ts-proto codec, the reference: on arbitrary Structs
// (nested lists, nulls, -0, NaN, huge doubles, unicode and "__proto__" keys, holes) and whole
// messages, decoding gives the same values and encoding the same bytes; lazily decoded Structs
// behave as plain objects however they are read or changed; malformed bytes fail cleanly.
import {
  RunFunctionRequest,
  RunFunctionResponse,
  type Capability,
  type Ready,
  type Resource,
  type Severity,
  type Status,
  type Target,
} from '@crossplane-org/function-sdk-typescript';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { decodeRunFunctionRequest, peekTag } from './request.js';
import { encodeRunFunctionResponse } from './response.js';
import { MAX_DEPTH, isUndecoded, type JsonObject } from './struct.js';
import { WireError } from './wire.js';

const RUNS = Number(process.env['CODEC_RUNS'] ?? process.env['FUZZ_RUNS'] ?? '300');
const TIMEOUT_MS = 60_000 + RUNS * 20;

// --- a text form that tells apart what toEqual does not --------------------------------------

/** -0 from 0, NaN, undefined holes, key order and bytes all show; proxies are read through. */
function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean') return String(value);
  // isView, not instanceof: ts-proto sets a map key "__proto__" as the prototype, so an object can
  // inherit from a Buffer without being bytes.
  if (ArrayBuffer.isView(value)) {
    return `bytes(${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')})`;
  }
  if (Array.isArray(value)) return `[${value.map(show).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .map((k) => `${JSON.stringify(k)}:${show(obj[k])}`)
      .join(',')}}`;
  }
  return `<${typeof value}>`;
}

// --- arbitraries ------------------------------------------------------------------------------

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: fc.oneof(loneSurrogate, fc.string({ unit: 'binary', minLength: 1 })) }),
  // Past the decoder's short-string cache.
  fc.string({ minLength: 60, maxLength: 300 }),
  fc.constantFrom('\uFEFFbom', 'ünïcode', '🦙', 'x'.repeat(5000), 'a\u0000b'),
);
const key = fc.oneof(
  { weight: 3, arbitrary: text },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '__proto__',
      '',
      'constructor',
      'toString',
      'hasOwnProperty',
      '0',
      '1',
      '10',
      '-1',
      '01',
      '4294967295',
      'apiVersion',
    ),
  },
);
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    -0,
    0,
    2 ** 53,
    -(2 ** 53),
    2 ** 64,
    1e308,
    -1e308,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    NaN,
    Infinity,
    -Infinity,
    0.1,
  ),
);
const leaf = fc.oneof(fc.constant(null), fc.boolean(), number, text);

/** An object with the given entries as own properties, "__proto__" included. */
function objectOf(entries: [string, unknown][]): JsonObject {
  const obj: JsonObject = {};
  for (const [k, v] of entries) {
    Object.defineProperty(obj, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return obj;
}

const json = fc.letrec<{ value: unknown; list: unknown[]; object: JsonObject }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('list'), tie('object')),
  list: fc.array(
    fc.oneof(
      { weight: 9, arbitrary: tie('value') },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
    { maxLength: 5 },
  ),
  object: fc
    .array(
      fc.tuple(
        key,
        fc.oneof(
          { weight: 9, arbitrary: tie('value') },
          { weight: 1, arbitrary: fc.constant(undefined) },
        ),
      ),
      { maxLength: 6 },
    )
    .map(objectOf),
}));
const struct = json.object;

/** Request bytes from a partial message (nested messages may be partial too). */
function requestWith(parts: object): Buffer {
  return Buffer.from(
    RunFunctionRequest.encode(
      RunFunctionRequest.fromPartial(parts as Partial<RunFunctionRequest>),
    ).finish(),
  );
}

function emptyResponse(parts: Partial<RunFunctionResponse>): RunFunctionResponse {
  return {
    meta: undefined,
    desired: undefined,
    results: [],
    context: undefined,
    requirements: undefined,
    conditions: [],
    output: undefined,
    ...parts,
  };
}

const tsProtoBytes = (rsp: RunFunctionResponse): Buffer =>
  Buffer.from(RunFunctionResponse.encode(rsp).finish());

/**
 * Whether ts-proto re-encodes these request bytes unchanged. Not so when decoding merges keys
 * (two lone surrogates both become U+FFFD): bytes copied through then keep both entries, which
 * a reader resolves to the same value (last one wins), but the bytes differ.
 */
function isCanonical(bytes: Buffer): boolean {
  return Buffer.from(RunFunctionRequest.encode(RunFunctionRequest.decode(bytes)).finish()).equals(
    bytes,
  );
}

/** Our bytes mean what ts-proto's encoding of `ref` means; byte for byte when `exact`. */
function expectSameResponse(ours: Buffer, ref: RunFunctionResponse, exact: boolean): void {
  const theirs = tsProtoBytes(ref);
  expect(show(RunFunctionResponse.decode(ours))).toBe(show(RunFunctionResponse.decode(theirs)));
  if (exact) expect(ours.equals(theirs)).toBe(true);
}

/** Run the same change on both sides: both succeed, or both throw. */
function both(a: () => void, b: () => void): void {
  let threwA = false;
  let threwB = false;
  try {
    a();
  } catch {
    threwA = true;
  }
  try {
    b();
  } catch {
    threwB = true;
  }
  expect(threwB).toBe(threwA);
}

// --- Structs ------------------------------------------------------------------------------------

describe(`Struct codec against ts-proto (${RUNS} cases per property)`, () => {
  it(
    'encodes arbitrary Structs to the same bytes',
    () => {
      fc.assert(
        fc.property(struct, struct, (a, b) => {
          const rsp = emptyResponse({ context: a, output: b });
          expect(encodeRunFunctionResponse(rsp).equals(tsProtoBytes(rsp))).toBe(true);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'decodes to the same values, eagerly, lazily and with everything lazy',
    () => {
      fc.assert(
        fc.property(struct, struct, (input, context) => {
          const bytes = requestWith({ input, context });
          const ref = RunFunctionRequest.decode(bytes);
          for (const opts of [{ lazy: false }, {}, { lazyMinBytes: 0 }]) {
            const mine = decodeRunFunctionRequest(bytes, opts);
            expect(show(mine.input)).toBe(show(ref.input));
            expect(show(mine.context)).toBe(show(ref.context));
          }
          // And decode(encode(x)) is decode(encode(x)) through ts-proto, for our encoder too.
          const ours = encodeRunFunctionResponse(emptyResponse({ context, output: input }));
          const back = RunFunctionResponse.decode(ours);
          expect(show(back.context)).toBe(show(ref.context));
          expect(show(back.output)).toBe(show(ref.input));
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'copies an untouched lazy Struct through as the bytes it came in',
    () => {
      fc.assert(
        fc.property(struct, (context) => {
          const bytes = requestWith({ context });
          const mine = decodeRunFunctionRequest(bytes, { lazyMinBytes: 0 });
          expect(isUndecoded(mine.context)).toBe(true);
          const out = encodeRunFunctionResponse(emptyResponse({ context: mine.context }));
          const ref = RunFunctionRequest.decode(bytes);
          expectSameResponse(out, emptyResponse({ context: ref.context }), isCanonical(bytes));
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'lazy Structs behave as plain objects when read, changed, copied and frozen',
    () => {
      // The same operations on a lazily decoded Struct and on ts-proto's plain one must leave
      // them equal, and encode to the same bytes.
      const op = fc.tuple(fc.nat({ max: 6 }), fc.nat(), leaf);
      fc.assert(
        fc.property(struct, fc.array(op, { maxLength: 12 }), (context, ops) => {
          const bytes = requestWith({ context });
          const ref = RunFunctionRequest.decode(bytes).context ?? {};
          const lazy = decodeRunFunctionRequest(bytes, { lazyMinBytes: 0 }).context ?? {};
          const cursors: [unknown, unknown] = [ref, lazy];
          for (const [kind, pick, value] of ops) {
            const [a, b] = cursors;
            if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) break;
            const ka = Object.keys(a);
            const kb = Object.keys(b);
            expect(kb).toEqual(ka);
            const k = ka.length > 0 ? (ka[pick % ka.length] ?? '') : `new${pick}`;
            const ra = a as Record<string, unknown>;
            const rb = b as Record<string, unknown>;
            expect(k in rb).toBe(k in ra);
            switch (kind) {
              case 0: // descend
                cursors[0] = ra[k];
                cursors[1] = rb[k];
                break;
              case 1: // overwrite or add
                both(
                  () => (ra[k] = value),
                  () => (rb[k] = value),
                );
                break;
              case 2: // add a fresh key
                both(
                  () => (ra[`k${pick}`] = value),
                  () => (rb[`k${pick}`] = value),
                );
                break;
              case 3:
                both(
                  () => Reflect.deleteProperty(ra, k) || fail(),
                  () => Reflect.deleteProperty(rb, k) || fail(),
                );
                break;
              case 4: // replace a child by a spread copy of itself
                if (typeof ra[k] === 'object' && ra[k] !== null && !Array.isArray(ra[k])) {
                  const ca = { ...(ra[k] as JsonObject) };
                  const cb = { ...(rb[k] as JsonObject) };
                  both(
                    () => (ra[k] = ca),
                    () => (rb[k] = cb),
                  );
                }
                break;
              case 5:
                if (Array.isArray(ra[k]) && Array.isArray(rb[k])) {
                  const la = ra[k] as unknown[];
                  const lb = rb[k] as unknown[];
                  both(
                    () => la.push(value),
                    () => lb.push(value),
                  );
                }
                break;
              default:
                Object.freeze(a);
                Object.freeze(b);
                expect(Object.isFrozen(b)).toBe(true);
            }
          }
          expect(show(lazy)).toBe(show(ref));
          expect(JSON.stringify(lazy)).toBe(JSON.stringify(ref));
          const out = encodeRunFunctionResponse(emptyResponse({ context: lazy }));
          expectSameResponse(out, emptyResponse({ context: ref }), isCanonical(bytes));
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it('a lazy Struct spreads, compares and serializes like the plain one', () => {
    const context = {
      a: { b: [1, { c: 'x'.repeat(300) }], d: null },
      e: 'y'.repeat(300),
      f: { g: { h: -0 } },
    };
    const bytes = requestWith({ context });
    const lazy = decodeRunFunctionRequest(bytes, { lazyMinBytes: 0 }).context ?? {};
    expect(lazy).toStrictEqual(context);
    expect({ ...lazy }).toStrictEqual(context);
    expect(Object.entries(lazy).map(([k]) => k)).toEqual(['a', 'e', 'f']);
    expect(JSON.parse(JSON.stringify(lazy))).toEqual(JSON.parse(JSON.stringify(context)));
    expect('a' in lazy && !('z' in lazy)).toBe(true);
    expect(Object.getOwnPropertyDescriptor(lazy, 'e')?.value).toBe('y'.repeat(300));
  });
});

// --- values a Struct cannot hold ----------------------------------------------------------------

describe('unencodable values', () => {
  it.each([
    ['bigint', 10n],
    ['function', () => 1],
    ['symbol', Symbol('s')],
  ])('throws on a %s as ts-proto does', (_name, value) => {
    const rsp = emptyResponse({ context: { a: [{ b: value }] } });
    let expected = '';
    try {
      tsProtoBytes(rsp);
    } catch (err) {
      expected = (err as Error).message;
    }
    expect(expected).not.toBe('');
    expect(() => encodeRunFunctionResponse(rsp)).toThrow(expected);
  });

  it('refuses a cycle and over-deep nesting with an error, not a stack overflow', () => {
    const cyclic: JsonObject = { a: 1 };
    cyclic['self'] = cyclic;
    expect(() => encodeRunFunctionResponse(emptyResponse({ context: cyclic }))).toThrow(
      `Struct nesting deeper than ${MAX_DEPTH} levels`,
    );
    let deep: JsonObject = {};
    for (let i = 0; i < MAX_DEPTH + 5; i++) deep = { a: [deep] };
    expect(() => encodeRunFunctionResponse(emptyResponse({ context: deep }))).toThrow(WireError);
  });

  it('refuses over-deep nesting on decode with a WireError', () => {
    // Build Struct{a: Value{struct: Struct{a: ...}}} bytes from the inside out.
    let inner = Buffer.alloc(0);
    for (let i = 0; i < MAX_DEPTH + 5; i++) {
      const value = Buffer.concat([Buffer.from([0x2a]), varint(inner.length), inner]);
      const entry = Buffer.concat([
        Buffer.from([0x0a, 0x01, 0x61, 0x12]),
        varint(value.length),
        value,
      ]);
      inner = Buffer.concat([Buffer.from([0x0a]), varint(entry.length), entry]);
    }
    const bytes = Buffer.concat([Buffer.from([0x22]), varint(inner.length), inner]);
    expect(() => decodeRunFunctionRequest(bytes)).toThrow(WireError);
  });
});

function fail(): never {
  throw new Error('refused');
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

// --- whole messages -----------------------------------------------------------------------------

const bytesArb = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));
const enumArb = fc.oneof(fc.nat({ max: 3 }), fc.integer({ min: -5, max: 2 ** 31 - 1 }));
// Unknown enum numbers included: protobuf keeps them, so both codecs must too.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- E: the enum to store as
const asEnum = <E extends number>(v: number): E => v as E;
const readyArb = enumArb.map((v) => asEnum<Ready>(v));
const severityArb = enumArb.map((v) => asEnum<Severity>(v));
const statusArb = enumArb.map((v) => asEnum<Status>(v));
const targetArb = enumArb.map((v) => asEnum<Target>(v));
const capabilityArb = enumArb.map((v) => asEnum<Capability>(v));
const resourceArb: fc.Arbitrary<Resource> = fc.record({
  resource: fc.option(struct, { nil: undefined }),
  connectionDetails: fc.dictionary(text, bytesArb, { maxKeys: 3 }),
  ready: readyArb,
});
const stateArb = fc.record({
  composite: fc.option(resourceArb, { nil: undefined }),
  resources: fc.dictionary(text, resourceArb, { maxKeys: 4 }),
});
const resourcesArb = fc.record({ items: fc.array(resourceArb, { maxLength: 3 }) });

const requestArb: fc.Arbitrary<RunFunctionRequest> = fc.record({
  meta: fc.option(
    fc.record({ tag: text, capabilities: fc.array(capabilityArb, { maxLength: 4 }) }),
    {
      nil: undefined,
    },
  ),
  observed: fc.option(stateArb, { nil: undefined }),
  desired: fc.option(stateArb, { nil: undefined }),
  input: fc.option(struct, { nil: undefined }),
  context: fc.option(struct, { nil: undefined }),
  extraResources: fc.dictionary(text, resourcesArb, { maxKeys: 2 }),
  credentials: fc.dictionary(
    text,
    fc.record({
      credentialData: fc.option(
        fc.record({ data: fc.dictionary(text, bytesArb, { maxKeys: 3 }) }),
        {
          nil: undefined,
        },
      ),
    }),
    { maxKeys: 2 },
  ),
  requiredResources: fc.dictionary(text, resourcesArb, { maxKeys: 3 }),
  requiredSchemas: fc.dictionary(
    text,
    fc.record({ openapiV3: fc.option(struct, { nil: undefined }) }),
    { maxKeys: 2 },
  ),
});

const selectorArb = fc.record(
  {
    apiVersion: text,
    kind: text,
    matchName: text,
    matchLabels: fc.record({ labels: fc.dictionary(text, text, { maxKeys: 3 }) }),
    namespace: text,
  },
  { requiredKeys: ['apiVersion', 'kind'] },
);
const responseArb: fc.Arbitrary<RunFunctionResponse> = fc.record({
  meta: fc.option(
    fc.record(
      {
        tag: text,
        ttl: fc.record({
          seconds: fc.oneof(fc.integer(), fc.constantFrom(0, -1, 2 ** 40, -(2 ** 40))),
          nanos: fc.integer({ min: -999_999_999, max: 999_999_999 }),
        }),
      },
      { requiredKeys: ['tag'] },
    ),
    { nil: undefined },
  ),
  desired: fc.option(stateArb, { nil: undefined }),
  results: fc.array(
    fc.record(
      { severity: severityArb, message: text, reason: text, target: targetArb },
      { requiredKeys: ['severity', 'message'] },
    ),
    { maxLength: 3 },
  ),
  context: fc.option(struct, { nil: undefined }),
  requirements: fc.option(
    fc.record({
      extraResources: fc.dictionary(text, selectorArb, { maxKeys: 2 }),
      resources: fc.dictionary(text, selectorArb, { maxKeys: 3 }),
      schemas: fc.dictionary(text, fc.record({ apiVersion: text, kind: text }), { maxKeys: 2 }),
    }),
    { nil: undefined },
  ),
  conditions: fc.array(
    fc.record(
      { type: text, status: statusArb, reason: text, message: text, target: targetArb },
      { requiredKeys: ['type', 'status', 'reason'] },
    ),
    { maxLength: 3 },
  ),
  output: fc.option(struct, { nil: undefined }),
});

describe(`RunFunctionRequest / RunFunctionResponse against ts-proto (${RUNS} cases)`, () => {
  it(
    'decodes arbitrary requests to the same message, eagerly and lazily',
    () => {
      fc.assert(
        fc.property(requestArb, (req) => {
          const bytes = Buffer.from(RunFunctionRequest.encode(req).finish());
          const ref = show(RunFunctionRequest.decode(bytes));
          expect(show(decodeRunFunctionRequest(bytes, { lazy: false }))).toBe(ref);
          expect(show(decodeRunFunctionRequest(bytes))).toBe(ref);
          expect(show(decodeRunFunctionRequest(bytes, { lazyMinBytes: 0 }))).toBe(ref);
          expect(peekTag(bytes)).toBe(RunFunctionRequest.decode(bytes).meta?.tag ?? '');
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'encodes arbitrary responses to the same bytes',
    () => {
      fc.assert(
        fc.property(responseArb, (rsp) => {
          expect(encodeRunFunctionResponse(rsp).equals(tsProtoBytes(rsp))).toBe(true);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'passes a lazily decoded desired state through to the same bytes',
    () => {
      fc.assert(
        fc.property(requestArb, (req) => {
          const bytes = Buffer.from(RunFunctionRequest.encode(req).finish());
          const ref = RunFunctionRequest.decode(bytes);
          const mine = decodeRunFunctionRequest(bytes, { lazyMinBytes: 0 });
          const a = emptyResponse({ desired: mine.desired, context: mine.context });
          const b = emptyResponse({ desired: ref.desired, context: ref.context });
          expectSameResponse(encodeRunFunctionResponse(a), b, isCanonical(bytes));
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );
});

// --- malformed bytes ----------------------------------------------------------------------------

const SENTINEL = 'c2VudGluZWwtc2VjcmV0LXZhbHVl';

/** Decode and read everything (lazy parts included); only a WireError may come out. */
function decodeAll(bytes: Buffer, lazyMinBytes: number): void {
  try {
    const req = decodeRunFunctionRequest(bytes, { lazyMinBytes });
    show(req);
    encodeRunFunctionResponse(
      emptyResponse({ desired: req.desired, context: req.context, output: req.input }),
    );
  } catch (err) {
    expect(err).toBeInstanceOf(WireError);
    // Errors name offsets, never bytes: a request can carry secrets.
    expect((err as Error).message).not.toContain(SENTINEL);
    expect((err as Error).message).not.toContain('sentinel');
  }
}

describe(`malformed bytes (${RUNS} cases per property)`, () => {
  const valid = requestWith({
    meta: { tag: 'tag' },
    observed: {
      composite: { resource: { kind: 'X', spec: { token: SENTINEL } } },
      resources: {
        a: { resource: { spec: { list: [1, 'sentinel', null, { deep: [true, -0] }] } } },
      },
    },
    desired: { resources: { b: { resource: { data: { token: SENTINEL } } } } },
    credentials: { c: { credentialData: { data: { token: Buffer.from(SENTINEL) } } } },
    context: { x: 'y'.repeat(100) },
  });

  it(
    'arbitrary bytes decode or fail with a WireError',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 300 }), (b, lazyMin) => {
          decodeAll(Buffer.from(b), lazyMin);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'a valid request with bytes changed, cut or inserted decodes or fails with a WireError',
    () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 2 })), {
            minLength: 1,
            maxLength: 4,
          }),
          fc.nat({ max: 300 }),
          (edits, lazyMin) => {
            let bytes = Buffer.from(valid);
            for (const [at, byte, kind] of edits) {
              const i = at % bytes.length;
              if (kind === 0) bytes[i] = byte;
              else if (kind === 1) bytes = bytes.subarray(0, i);
              else
                bytes = Buffer.concat([
                  bytes.subarray(0, i),
                  Buffer.from([byte]),
                  bytes.subarray(i),
                ]);
              if (bytes.length === 0) return;
            }
            decodeAll(bytes, lazyMin);
          },
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it('keeps credentials as bytes, never strings', () => {
    const req = decodeRunFunctionRequest(valid);
    const data = req.credentials['c']?.credentialData?.data['token'];
    expect(Buffer.isBuffer(data)).toBe(true);
    expect(data?.toString('utf8')).toBe(SENTINEL);
  });
});
