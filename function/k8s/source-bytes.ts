// Which wire bytes a decoded object came from, and frozen objects whose wire bytes may be reused.
//
// The codec records, for each composed or required resource it decodes, the exact bytes of that
// resource in the request. A core may then tell "the same input as last call" by comparing bytes
// (a memcmp) instead of walking objects, and hand back results it froze earlier, whose encoding
// the codec keeps. Neither changes what a core computes, only how often.

/** Bytes [start, end) of `buf`: kept as a range, since a Buffer view per resource costs more. */
export interface SourceSpan {
  buf: Buffer;
  start: number;
  end: number;
}

const sourceBytes = new WeakMap<object, SourceSpan>();

/** Record that `obj` was decoded from buf[start, end) (the request's bytes; not copied). */
export function recordSourceBytes(obj: object, buf: Buffer, start: number, end: number): void {
  sourceBytes.set(obj, { buf, start, end });
}

/** The bytes `obj` was decoded from, if the codec recorded them (fast codec only). */
export function sourceBytesOf(obj: unknown): SourceSpan | undefined {
  return typeof obj === 'object' && obj !== null ? sourceBytes.get(obj) : undefined;
}

/**
 * A deep copy of a JSON value made of plain, frozen objects and arrays. The copy holds nothing of
 * the request it was read from (lazily decoded objects are read whole), so it may outlive it, and
 * freezing marks it as safe to encode once and reuse (see encodedOnce in the codec).
 */
export function frozenCopy<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    return Object.freeze(value.map((v: unknown) => frozenCopy(v))) as T;
  }
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(src)) {
    const v = src[key];
    if (v !== undefined) out[key] = frozenCopy(v);
  }
  return Object.freeze(out) as T;
}
