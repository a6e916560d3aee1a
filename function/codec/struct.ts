// google.protobuf.Struct / Value / ListValue straight to and from plain JSON values, with the
// semantics of the SDK's ts-proto codec (the reference the tests compare against):
//   - a Value holding nothing is `undefined`: dropped from a Struct, kept as a hole in a list;
//   - a Value with several members set resolves string > number > bool > struct > list > null;
//   - a repeated map key keeps its first position and its last value; "__proto__" is dropped;
//   - encoding drops `undefined` members, writes `undefined` list items as empty Values, and
//     throws "Unsupported any value type: <type>" on bigint, function and symbol.
//
// Large Structs can be decoded lazily: a Proxy over an empty object that decodes one level of
// its bytes on first touch (nested Structs stay lazy until touched in turn). An untouched lazy
// Struct is encoded by copying its original bytes, after checking they are well-formed.

import { Reader, ReverseWriter, WireError } from './wire.js';

export type JsonObject = Record<string, unknown>;

/** Deeper nesting is refused, on decode and on encode (a cycle would otherwise overflow the stack). */
export const MAX_DEPTH = 1000;

/** Structs of at least this many bytes are decoded lazily when laziness is asked for. */
export const LAZY_MIN_BYTES = 256;

const LAZY: unique symbol = Symbol('modelcache.lazyStruct');

// Value fields (google/protobuf/struct.proto).
const TAG_NULL = 0x08; // 1, varint
const TAG_NUMBER = 0x11; // 2, i64
const TAG_STRING = 0x1a; // 3, len
const TAG_BOOL = 0x20; // 4, varint
const TAG_STRUCT = 0x2a; // 5, len
const TAG_LIST = 0x32; // 6, len
// Struct.fields entries and ListValue.values are both field 1; an entry's key 1, value 2.
const TAG_ITEM = 0x0a;
const TAG_ENTRY_KEY = 0x0a;
const TAG_ENTRY_VALUE = 0x12;

/** How Structs nested in the bytes being decoded become JavaScript values. */
export interface DecodeMode {
  /** Structs of at least this many bytes become lazy proxies; Infinity: decode everything now. */
  lazyMinBytes: number;
}

export const EAGER: DecodeMode = { lazyMinBytes: Infinity };
export const LAZY_LARGE: DecodeMode = { lazyMinBytes: LAZY_MIN_BYTES };

function tooDeep(): never {
  throw new WireError(`Struct nesting deeper than ${MAX_DEPTH} levels`);
}

function setField(obj: JsonObject, key: string, value: unknown): void {
  // ts-proto assigns into a plain object, where "__proto__" sets the prototype instead of a key.
  if (value !== undefined && key !== '__proto__') obj[key] = value;
}

/** Decode the entries of a Struct in [r.pos, end) into `into`. */
function readStructInto(
  r: Reader,
  end: number,
  depth: number,
  mode: DecodeMode,
  into: JsonObject,
): void {
  if (depth > MAX_DEPTH) tooDeep();
  while (r.pos < end) {
    const tag = r.tag();
    if (tag !== TAG_ITEM) {
      r.skip(tag & 7, end);
      continue;
    }
    const entryEnd = r.fieldEnd(end);
    let key = '';
    let value: unknown = undefined;
    while (r.pos < entryEnd) {
      const t = r.tag();
      if (t === TAG_ENTRY_KEY) {
        key = r.string(entryEnd);
      } else if (t === TAG_ENTRY_VALUE) {
        const valueEnd = r.fieldEnd(entryEnd);
        value = readValue(r, valueEnd, depth + 1, mode);
      } else {
        r.skip(t & 7, entryEnd);
      }
    }
    r.expectEnd(entryEnd);
    setField(into, key, value);
  }
  r.expectEnd(end);
}

function readStruct(r: Reader, end: number, depth: number, mode: DecodeMode): JsonObject {
  const len = end - r.pos;
  if (len >= mode.lazyMinBytes) {
    const lazy = lazyStruct(r.buf, r.pos, end, depth, mode);
    r.pos = end;
    return lazy;
  }
  const obj: JsonObject = {};
  readStructInto(r, end, depth, mode, obj);
  return obj;
}

function readList(r: Reader, end: number, depth: number, mode: DecodeMode): unknown[] {
  if (depth > MAX_DEPTH) tooDeep();
  const out: unknown[] = [];
  while (r.pos < end) {
    const tag = r.tag();
    if (tag !== TAG_ITEM) {
      r.skip(tag & 7, end);
      continue;
    }
    const itemEnd = r.fieldEnd(end);
    out.push(readValue(r, itemEnd, depth + 1, mode));
  }
  r.expectEnd(end);
  return out;
}

/** Decode a Value message in [r.pos, end). */
function readValue(r: Reader, end: number, depth: number, mode: DecodeMode): unknown {
  if (r.pos === end) return undefined;
  const start = r.pos;
  // Fast path: exactly one member, as every encoder writes it.
  const tag = r.tag();
  let value: unknown;
  switch (tag) {
    case TAG_STRING:
      value = r.string(end);
      break;
    case TAG_NUMBER:
      value = r.double(end);
      break;
    case TAG_BOOL:
      value = r.bool();
      break;
    case TAG_STRUCT: {
      const structEnd = r.fieldEnd(end);
      value = readStruct(r, structEnd, depth, mode);
      break;
    }
    case TAG_LIST: {
      const listEnd = r.fieldEnd(end);
      value = readList(r, listEnd, depth, mode);
      break;
    }
    case TAG_NULL:
      r.skip(0, end);
      value = null;
      break;
    default:
      r.pos = start;
      return readValueSlow(r, end, depth, mode);
  }
  if (r.pos === end) return value;
  r.pos = start;
  return readValueSlow(r, end, depth, mode);
}

/** Any number of members in any order, resolved as ts-proto's Value.unwrap does. */
function readValueSlow(r: Reader, end: number, depth: number, mode: DecodeMode): unknown {
  let str: string | undefined;
  let num: number | undefined;
  let bool: boolean | undefined;
  let struct: JsonObject | undefined;
  let list: unknown[] | undefined;
  let isNull = false;
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag) {
      case TAG_STRING:
        str = r.string(end);
        break;
      case TAG_NUMBER:
        num = r.double(end);
        break;
      case TAG_BOOL:
        bool = r.bool();
        break;
      case TAG_STRUCT: {
        const structEnd = r.fieldEnd(end);
        struct = readStruct(r, structEnd, depth, mode);
        break;
      }
      case TAG_LIST: {
        const listEnd = r.fieldEnd(end);
        list = readList(r, listEnd, depth, mode);
        break;
      }
      case TAG_NULL:
        r.skip(0, end);
        isNull = true;
        break;
      default:
        r.skip(tag & 7, end);
    }
  }
  r.expectEnd(end);
  if (str !== undefined) return str;
  if (num !== undefined) return num;
  if (bool !== undefined) return bool;
  if (struct !== undefined) return struct;
  if (list !== undefined) return list;
  return isNull ? null : undefined;
}

/** Decode the Struct message in buf[start, end). */
export function decodeStruct(
  buf: Buffer,
  start: number,
  end: number,
  mode: DecodeMode = EAGER,
  depth = 0,
): JsonObject {
  return readStruct(new Reader(buf, start, end), end, depth, mode);
}

/** Decode a standalone Value message (as in a Struct entry or a list item). */
export function decodeValue(buf: Buffer, mode: DecodeMode = EAGER): unknown {
  return readValue(new Reader(buf), buf.length, 0, mode);
}

// --- lazy Structs ------------------------------------------------------------------------------

/**
 * The state behind a lazy Struct proxy. Every trap that can observe or change the object first
 * decodes its bytes into the target (one level), then forwards to the target, so the proxy
 * behaves exactly as the plain object it stands for.
 */
class LazyStruct implements ProxyHandler<JsonObject> {
  decoded = false;

  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
    readonly depth: number,
    readonly mode: DecodeMode,
    readonly target: JsonObject,
    /** Bytes this codec wrote itself: copied through without the structural check. */
    readonly trusted = false,
  ) {}

  materialize(): JsonObject {
    if (!this.decoded) {
      // Set first: a decoding error must not leave a half-decoded object that retries.
      this.decoded = true;
      const r = new Reader(this.buf, this.start, this.end);
      readStructInto(r, this.end, this.depth, this.mode, this.target);
    }
    return this.target;
  }

  get(_t: JsonObject, key: string | symbol): unknown {
    if (key === LAZY) return this;
    return Reflect.get(this.materialize(), key);
  }
  set(_t: JsonObject, key: string | symbol, value: unknown): boolean {
    return Reflect.set(this.materialize(), key, value);
  }
  has(_t: JsonObject, key: string | symbol): boolean {
    return Reflect.has(this.materialize(), key);
  }
  deleteProperty(_t: JsonObject, key: string | symbol): boolean {
    return Reflect.deleteProperty(this.materialize(), key);
  }
  ownKeys(): (string | symbol)[] {
    return Reflect.ownKeys(this.materialize());
  }
  getOwnPropertyDescriptor(_t: JsonObject, key: string | symbol): PropertyDescriptor | undefined {
    return Reflect.getOwnPropertyDescriptor(this.materialize(), key);
  }
  defineProperty(_t: JsonObject, key: string | symbol, desc: PropertyDescriptor): boolean {
    return Reflect.defineProperty(this.materialize(), key, desc);
  }
  preventExtensions(): boolean {
    return Reflect.preventExtensions(this.materialize());
  }
}

function lazyStruct(
  buf: Buffer,
  start: number,
  end: number,
  depth: number,
  mode: DecodeMode,
  trusted = false,
): JsonObject {
  const target: JsonObject = {};
  return new Proxy(target, new LazyStruct(buf, start, end, depth, mode, target, trusted));
}

/**
 * A Struct this codec encoded earlier (encodeStruct), held as its bytes: it reads as the object it
 * encodes and, untouched, is written back as those bytes without decoding or checking them.
 */
export function encodedStruct(buf: Buffer, start = 0, end = buf.length): JsonObject {
  return lazyStruct(buf, start, end, 0, LAZY_LARGE, true);
}

function lazyOf(value: object): LazyStruct | undefined {
  const state = (value as { [LAZY]?: unknown })[LAZY];
  return state instanceof LazyStruct ? state : undefined;
}

/**
 * Decode buf[start, end) as a Struct that stays bytes until first touched, whatever its size,
 * when `mode` allows laziness at all (EAGER decodes it now). For composed resources: the ones
 * nobody reads pass through as bytes, and undecodedSpan can name their bytes.
 */
export function decodeStructLazily(
  buf: Buffer,
  start: number,
  end: number,
  mode: DecodeMode,
): JsonObject {
  return mode.lazyMinBytes === Infinity
    ? decodeStruct(buf, start, end, mode)
    : lazyStruct(buf, start, end, 0, mode);
}

/** buf[start, end): the bytes a lazy Struct stands for. */
export interface Span {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
}

/**
 * The bytes a lazy Struct stands for, while it is still only bytes (never decoded). Its own
 * state, not a copy: the memo asks for seven of these per cluster on every call.
 */
export function undecodedSpan(value: unknown): Span | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const lazy = lazyOf(value);
  return lazy === undefined || lazy.decoded ? undefined : lazy;
}

/** True for a lazy Struct whose bytes have not been decoded (it is still only bytes). */
export function isUndecoded(value: unknown): boolean {
  return undecodedSpan(value) !== undefined;
}

// --- structural check of bytes copied through undecoded ---------------------------------------

/** Walk a Struct's bytes as deep as they go, checking tags and lengths, decoding nothing. */
function checkStruct(r: Reader, end: number, depth: number): void {
  if (depth > MAX_DEPTH) tooDeep();
  while (r.pos < end) {
    const tag = r.tag();
    if (tag !== TAG_ITEM) {
      r.skip(tag & 7, end);
      continue;
    }
    const entryEnd = r.fieldEnd(end);
    while (r.pos < entryEnd) {
      const t = r.tag();
      if (t === TAG_ENTRY_VALUE) {
        const valueEnd = r.fieldEnd(entryEnd);
        checkValue(r, valueEnd, depth + 1);
      } else {
        r.skip(t & 7, entryEnd);
      }
    }
    r.expectEnd(entryEnd);
  }
  r.expectEnd(end);
}

function checkValue(r: Reader, end: number, depth: number): void {
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === TAG_STRUCT) {
      const structEnd = r.fieldEnd(end);
      checkStruct(r, structEnd, depth);
    } else if (tag === TAG_LIST) {
      const listEnd = r.fieldEnd(end);
      if (depth > MAX_DEPTH) tooDeep();
      while (r.pos < listEnd) {
        const t = r.tag();
        if (t === TAG_ITEM) {
          const itemEnd = r.fieldEnd(listEnd);
          checkValue(r, itemEnd, depth + 1);
        } else {
          r.skip(t & 7, listEnd);
        }
      }
      r.expectEnd(listEnd);
    } else {
      r.skip(tag & 7, end);
    }
  }
  r.expectEnd(end);
}

// --- encoding -----------------------------------------------------------------------------------

function unsupported(value: unknown): never {
  throw new Error(`Unsupported any value type: ${typeof value}`);
}

/** Write a Struct message's content (its entries), back to front. */
export function writeStruct(w: ReverseWriter, obj: object, depth = 0): void {
  if (depth > MAX_DEPTH) tooDeep();
  let src = obj as JsonObject;
  const lazy = lazyOf(obj);
  if (lazy !== undefined) {
    if (!lazy.decoded) {
      if (!lazy.trusted) {
        checkStruct(new Reader(lazy.buf, lazy.start, lazy.end), lazy.end, lazy.depth);
      }
      w.raw(lazy.buf, lazy.start, lazy.end);
      return;
    }
    src = lazy.target;
  }
  const keys = Object.keys(src);
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i] ?? '';
    const value = src[key];
    if (value === undefined || key === '__proto__') continue;
    const entry = w.written();
    writeValue(w, value, depth + 1);
    w.ldelim(entry, TAG_ENTRY_VALUE);
    if (key !== '') w.stringField(TAG_ENTRY_KEY, key);
    w.ldelim(entry, TAG_ITEM);
  }
}

/** Write a Value message's content for a JSON value, back to front. */
export function writeValue(w: ReverseWriter, value: unknown, depth: number): void {
  switch (typeof value) {
    case 'string':
      w.stringField(TAG_STRING, value);
      return;
    case 'number':
      w.double(value);
      w.byte(TAG_NUMBER);
      return;
    case 'boolean':
      w.bytes2(TAG_BOOL, value ? 1 : 0);
      return;
    case 'undefined':
      return;
    case 'object': {
      if (value === null) {
        w.bytes2(TAG_NULL, 0);
        return;
      }
      const mark = w.written();
      if (Array.isArray(value)) {
        writeList(w, value, depth);
        w.ldelim(mark, TAG_LIST);
      } else {
        writeStruct(w, value, depth);
        w.ldelim(mark, TAG_STRUCT);
      }
      return;
    }
    default:
      unsupported(value);
  }
}

function writeList(w: ReverseWriter, list: readonly unknown[], depth: number): void {
  if (depth > MAX_DEPTH) tooDeep();
  for (let i = list.length - 1; i >= 0; i--) {
    const item = w.written();
    writeValue(w, list[i], depth + 1);
    w.ldelim(item, TAG_ITEM);
  }
}

/** Encode a JSON object as a standalone Struct message. */
export function encodeStruct(obj: object): Buffer {
  const w = new ReverseWriter();
  writeStruct(w, obj);
  return w.finish();
}

/** Reused by encodeStructsEndToEnd: one writer, grown to the largest batch, not one per call. */
let scratch: ReverseWriter | undefined;

/**
 * Encode objects as Struct messages laid end to end in one new buffer (sized exactly), with the
 * offset where each ends: many small encodings without a writer or a buffer apiece.
 */
export function encodeStructsEndToEnd(objs: readonly object[]): { bytes: Buffer; ends: number[] } {
  const w = (scratch ??= new ReverseWriter(64 * 1024));
  w.pos = w.buf.length;
  const sizes: number[] = new Array<number>(objs.length).fill(0);
  for (let i = objs.length - 1; i >= 0; i--) {
    const mark = w.written();
    writeStruct(w, objs[i] ?? {});
    sizes[i] = w.written() - mark;
  }
  const ends: number[] = [];
  let end = 0;
  for (const size of sizes) ends.push((end += size));
  return { bytes: Buffer.from(w.finish()), ends };
}

/** Check `bytes` hold a well-formed Struct (tags and lengths at every depth). */
export function checkStructBytes(buf: Buffer, start = 0, end = buf.length): void {
  checkStruct(new Reader(buf, start, end), end, 0);
}
