// Protobuf wire primitives for the Function's hand-written codec: a bounds-checked reader over
// one request buffer, and a writer that fills its buffer from the end towards the start, so a
// length prefix is written after the bytes it measures and nothing is ever moved or sized twice.
//
// Errors name offsets and wire types only, never bytes: requests carry observed resources,
// which can hold secret values.

/** Thrown on bytes that are not a well-formed message of the expected type. */
export class WireError extends Error {
  override name = 'WireError';
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Strings of at least this many chars are encoded natively; shorter ones in JavaScript. */
const NATIVE_STRING = 32;

/** Strings up to this many bytes are decoded in JavaScript; longer ones natively. */
const SHORT_STRING = 64;

export class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start = 0,
    /** The end of the outermost message; every length read is checked against it. */
    readonly limit = buf.length,
  ) {
    this.pos = start;
  }

  /** A varint's low 32 bits, unsigned (tags, lengths, enums); up to 10 bytes are consumed. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let b = buf[pos++] ?? this.eof(pos - 1);
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let value = b & 0x7f;
    b = buf[pos++] ?? this.eof(pos - 1);
    value |= (b & 0x7f) << 7;
    if (b >= 0x80) {
      b = buf[pos++] ?? this.eof(pos - 1);
      value |= (b & 0x7f) << 14;
      if (b >= 0x80) {
        b = buf[pos++] ?? this.eof(pos - 1);
        value |= (b & 0x7f) << 21;
        if (b >= 0x80) {
          b = buf[pos++] ?? this.eof(pos - 1);
          value |= (b & 0x0f) << 28;
          // Bits above 32 are dropped, as protobuf does for 32-bit fields.
          for (let i = 0; b >= 0x80; i++) {
            if (i === 5) throw new WireError(`varint longer than 10 bytes at offset ${pos}`);
            b = buf[pos++] ?? this.eof(pos - 1);
          }
        }
      }
    }
    this.pos = pos;
    return value >>> 0;
  }

  /** The length of a length-delimited field, checked against the end of `end`. */
  length(end: number): number {
    const at = this.pos;
    const len = this.uint32();
    if (len > end - this.pos) {
      throw new WireError(`length ${len} at offset ${at} runs past the end of its message`);
    }
    return len;
  }

  /** Read a length prefix and return where the field it prefixes ends. */
  fieldEnd(end: number): number {
    const len = this.length(end);
    return this.pos + len;
  }

  bool(): boolean {
    // Any non-zero varint is true, whatever its width.
    const buf = this.buf;
    let nonZero = false;
    for (let i = 0; ; i++) {
      if (i === 10) throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
      const b = buf[this.pos++] ?? this.eof(this.pos - 1);
      if ((b & 0x7f) !== 0) nonZero = true;
      if (b < 0x80) return nonZero;
    }
  }

  double(end: number): number {
    if (end - this.pos < 8) throw new WireError(`truncated double at offset ${this.pos}`);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A length-delimited UTF-8 string (invalid sequences become U+FFFD, as TextDecoder does). */
  string(end: number): string {
    const len = this.length(end);
    const start = this.pos;
    this.pos = start + len;
    return utf8(this.buf, start, start + len);
  }

  /** Skip one field's value of the given wire type, staying within `end`. */
  skip(wireType: number, end: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        for (let i = 0; ; i++) {
          if (i === 10) throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
          if (this.pos >= end) this.eof(this.pos);
          if ((this.buf[this.pos++] ?? 0) < 0x80) break;
        }
        return;
      case WIRE_I64:
        this.advance(8, end);
        return;
      case WIRE_LEN: {
        const len = this.length(end);
        this.pos += len;
        return;
      }
      case WIRE_I32:
        this.advance(4, end);
        return;
      default:
        // Groups (3, 4) do not exist in proto3; 6 and 7 are not wire types.
        throw new WireError(`unsupported wire type ${wireType} at offset ${this.pos}`);
    }
  }

  /** Read a field tag; field number 0 is malformed. */
  tag(): number {
    const at = this.pos;
    const tag = this.uint32();
    if (tag >>> 3 === 0) throw new WireError(`invalid field number 0 at offset ${at}`);
    return tag;
  }

  /** Check the reader ended exactly at `end` (a nested message must not overrun its length). */
  expectEnd(end: number): void {
    if (this.pos !== end) throw new WireError(`message overruns its length at offset ${end}`);
  }

  private advance(n: number, end: number): void {
    if (end - this.pos < n) throw new WireError(`truncated field at offset ${this.pos}`);
    this.pos += n;
  }

  private eof(at: number): never {
    throw new WireError(`truncated message at offset ${at}`);
  }
}

// Short ASCII strings (keys, names, kinds) repeat across a request: they are looked up in a
// cache by a hash of their bytes, so each distinct one is built (and interned) once, and the
// decoded request holds one copy of it however often it occurs.
const CACHE_SLOTS = 16384;
const cache: (string | undefined)[] = new Array<string | undefined>(CACHE_SLOTS).fill(undefined);

/** Buffer's own UTF-8 slicer (what toString('utf8', ...) calls), without toString's checks. */
const slice: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as { utf8Slice?: unknown }).utf8Slice === 'function'
    ? (buf, start, end) =>
        (buf as Buffer & { utf8Slice(start: number, end: number): string }).utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end);

export function utf8(buf: Buffer, start: number, end: number): string {
  const len = end - start;
  if (len > SHORT_STRING) return slice(buf, start, end);
  let h = len;
  for (let i = start; i < end; i++) {
    const c = buf[i] ?? 0;
    if (c >= 0x80) return slice(buf, start, end);
    h = (Math.imul(h, 31) + c) | 0;
  }
  const slot = (h ^ (h >>> 15)) & (CACHE_SLOTS - 1);
  const hit = cache[slot];
  if (hit?.length === len) {
    let i = 0;
    while (i < len && hit.charCodeAt(i) === buf[start + i]) i++;
    if (i === len) return hit;
  }
  const s = slice(buf, start, end);
  cache[slot] = s;
  return s;
}

/** Bytes a varint of a non-negative integer below 2^53 takes. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (let x = Math.floor(v / 0x800000000); x > 0; x = Math.floor(x / 0x80)) n++;
  return n;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

/**
 * Writes a message back to front: a field's content first, then its length, then its tag. Fields
 * are therefore written in reverse order. `written()` counts bytes from the end, so it stays valid
 * when the buffer grows (growth keeps the written tail at the end of the new buffer).
 */
export class ReverseWriter {
  buf: Buffer;
  pos: number;

  /** Writes into `buf` (which it replaces when it grows) or a new buffer of `buf` bytes. */
  constructor(buf: Buffer | number = 4096) {
    this.buf = typeof buf === 'number' ? Buffer.allocUnsafe(Math.max(64, buf)) : buf;
    this.pos = this.buf.length;
  }

  /** Bytes written so far; a mark for `lengthSince`. */
  written(): number {
    return this.buf.length - this.pos;
  }

  /** Make room for `n` more bytes in front of what is written. */
  reserve(n: number): void {
    if (this.pos >= n) return;
    const used = this.written();
    let cap = this.buf.length * 2;
    while (cap - used < n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, cap - used, this.pos);
    this.buf = next;
    this.pos = cap - used;
  }

  byte(b: number): void {
    if (this.pos < 1) this.reserve(1);
    this.buf[--this.pos] = b;
  }

  /** Two bytes in wire order: `first` ends up before `second`. */
  bytes2(first: number, second: number): void {
    if (this.pos < 2) this.reserve(2);
    this.buf[--this.pos] = second;
    this.buf[--this.pos] = first;
  }

  /** A varint of a non-negative integer below 2^53. */
  varint(v: number): void {
    if (v < 0x80) {
      this.byte(v);
      return;
    }
    const n = varintSize(v);
    if (this.pos < n) this.reserve(n);
    let p = (this.pos -= n);
    const buf = this.buf;
    while (v >= 0x80) {
      buf[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[p] = v;
  }

  /** An int32 or enum as protobuf writes it: negative values sign-extend to 10 bytes. */
  int32(v: number): void {
    if (v >= 0) {
      this.varint(v);
      return;
    }
    if (this.pos < 10) this.reserve(10);
    let p = (this.pos -= 10);
    const buf = this.buf;
    let x = v;
    for (let i = 0; i < 9; i++) {
      buf[p++] = (x & 0x7f) | 0x80;
      x >>= 7;
    }
    buf[p] = 1;
  }

  /** A signed integer below 2^53 in magnitude as int64 (two's complement for negatives). */
  int64(v: number): void {
    if (v >= 0) {
      this.varint(v);
      return;
    }
    const big = BigInt.asUintN(64, BigInt(v));
    if (this.pos < 10) this.reserve(10);
    let p = (this.pos -= 10);
    const buf = this.buf;
    let x = big;
    for (let i = 0; i < 9; i++) {
      buf[p++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    buf[p] = Number(x);
  }

  double(v: number): void {
    if (this.pos < 8) this.reserve(8);
    f64[0] = v;
    const buf = this.buf;
    const p = (this.pos -= 8);
    buf[p] = f64Bytes[0] ?? 0;
    buf[p + 1] = f64Bytes[1] ?? 0;
    buf[p + 2] = f64Bytes[2] ?? 0;
    buf[p + 3] = f64Bytes[3] ?? 0;
    buf[p + 4] = f64Bytes[4] ?? 0;
    buf[p + 5] = f64Bytes[5] ?? 0;
    buf[p + 6] = f64Bytes[6] ?? 0;
    buf[p + 7] = f64Bytes[7] ?? 0;
  }

  /** A string's UTF-8 bytes (lone surrogates become U+FFFD, as TextEncoder does); returns their count. */
  utf8(s: string): number {
    const n = s.length;
    if (n >= NATIVE_STRING) {
      // Long strings: Buffer's native writer beats a JavaScript loop from a few dozen chars.
      const len = Buffer.byteLength(s, 'utf8');
      if (this.pos < len) this.reserve(len);
      this.pos -= len;
      // Same byte count as chars: ASCII only, where latin1 and UTF-8 are the same bytes.
      this.buf.write(s, this.pos, len, len === n ? 'latin1' : 'utf8');
      return len;
    }
    if (this.pos < n) this.reserve(n);
    const buf = this.buf;
    let p = this.pos;
    let i = n - 1;
    for (; i >= 0; i--) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[--p] = c;
    }
    if (i < 0) {
      this.pos = p;
      return n;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.reserve(len);
    this.pos -= len;
    this.buf.write(s, this.pos, len, 'utf8');
    return len;
  }

  /** A length-delimited string field with the given tag. */
  stringField(tag: number, s: string): void {
    const len = this.utf8(s);
    this.varint(len);
    this.byte(tag);
  }

  /** Close a length-delimited field whose content was written since `mark`. */
  ldelim(mark: number, tag: number): void {
    this.varint(this.written() - mark);
    this.byte(tag);
  }

  raw(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.pos < n) this.reserve(n);
    this.pos -= n;
    this.buf.set(src.subarray(start, end), this.pos);
  }

  /** The message written, as a view of the writer's buffer. */
  finish(): Buffer {
    return this.buf.subarray(this.pos);
  }
}
