// The SDK's RunFunctionResponse shape → bytes, written back to front in one pass. For the same
// message it writes the same bytes as the SDK's ts-proto encoder (the tests compare the two),
// except that a lazily decoded Struct nobody touched is copied through as the bytes it came in.

import {
  Ready,
  Severity,
  Status,
  type Condition,
  type Requirements,
  type Resource,
  type ResourceSelector,
  type Result,
  type RunFunctionResponse,
  type SchemaSelector,
  type State,
} from '@crossplane-org/function-sdk-typescript';

import { writeStruct } from './struct.js';
import { ReverseWriter } from './wire.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

function asString(value: unknown): string {
  // ts-proto's writer coerces non-strings with String().
  return typeof value === 'string' ? value : String(value);
}

function int32Field(w: ReverseWriter, tag: number, value: number): void {
  if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
    throw new Error(`invalid int32: ${String(value)}`);
  }
  w.int32(value);
  w.byte(tag);
}

function structField(w: ReverseWriter, tag: number, value: object): void {
  const mark = w.written();
  writeStruct(w, value);
  w.ldelim(mark, tag);
}

/** Entries of a map field, last first, each as `writeEntry` writes its content. */
function mapField<V>(
  w: ReverseWriter,
  tag: number,
  map: Record<string, V>,
  writeValue: (w: ReverseWriter, value: V) => void,
): void {
  const keys = Object.keys(map);
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i] ?? '';
    const mark = w.written();
    writeValue(w, map[key] as V);
    if (key !== '') w.stringField(0x0a, key);
    w.ldelim(mark, tag);
  }
}

function writeResource(w: ReverseWriter, res: Resource): void {
  if (res.ready !== Ready.READY_UNSPECIFIED) int32Field(w, 0x18, res.ready);
  mapField(w, 0x12, res.connectionDetails, (ww, value) => {
    if (value.length !== 0) {
      ww.raw(value, 0, value.length);
      ww.varint(value.length);
      ww.byte(0x12);
    }
  });
  if (res.resource !== undefined) structField(w, 0x0a, res.resource);
}

function messageValue<V>(
  writeMessage: (w: ReverseWriter, value: V) => void,
): (w: ReverseWriter, value: V | undefined) => void {
  return (w, value) => {
    if (value === undefined) return;
    const mark = w.written();
    writeMessage(w, value);
    w.ldelim(mark, 0x12);
  };
}

function writeState(w: ReverseWriter, state: State): void {
  mapField(w, 0x12, state.resources, messageValue(writeResource));
  if (state.composite !== undefined) {
    const mark = w.written();
    writeResource(w, state.composite);
    w.ldelim(mark, 0x0a);
  }
}

function writeResult(w: ReverseWriter, result: Result): void {
  if (result.target !== undefined) int32Field(w, 0x20, result.target);
  if (result.reason !== undefined) w.stringField(0x1a, asString(result.reason));
  if (result.message !== '') w.stringField(0x12, asString(result.message));
  if (result.severity !== Severity.SEVERITY_UNSPECIFIED) int32Field(w, 0x08, result.severity);
}

function writeCondition(w: ReverseWriter, c: Condition): void {
  if (c.target !== undefined) int32Field(w, 0x28, c.target);
  if (c.message !== undefined) w.stringField(0x22, asString(c.message));
  if (c.reason !== '') w.stringField(0x1a, asString(c.reason));
  if (c.status !== Status.STATUS_CONDITION_UNSPECIFIED) int32Field(w, 0x10, c.status);
  if (c.type !== '') w.stringField(0x0a, asString(c.type));
}

function writeSelector(w: ReverseWriter, sel: ResourceSelector): void {
  if (sel.namespace !== undefined) w.stringField(0x2a, asString(sel.namespace));
  if (sel.matchLabels !== undefined) {
    const mark = w.written();
    mapField(w, 0x0a, sel.matchLabels.labels, (ww, value) => {
      if (value !== '') ww.stringField(0x12, asString(value));
    });
    w.ldelim(mark, 0x22);
  }
  if (sel.matchName !== undefined) w.stringField(0x1a, asString(sel.matchName));
  if (sel.kind !== '') w.stringField(0x12, asString(sel.kind));
  if (sel.apiVersion !== '') w.stringField(0x0a, asString(sel.apiVersion));
}

function writeSchemaSelector(w: ReverseWriter, sel: SchemaSelector): void {
  if (sel.kind !== '') w.stringField(0x12, asString(sel.kind));
  if (sel.apiVersion !== '') w.stringField(0x0a, asString(sel.apiVersion));
}

function writeRequirements(w: ReverseWriter, req: Requirements): void {
  mapField(w, 0x1a, req.schemas, messageValue(writeSchemaSelector));
  mapField(w, 0x12, req.resources, messageValue(writeSelector));
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- encoded for older Crossplane
  mapField(w, 0x0a, req.extraResources, messageValue(writeSelector));
}

function repeated<V>(
  w: ReverseWriter,
  tag: number,
  items: readonly V[],
  writeItem: (w: ReverseWriter, item: V) => void,
): void {
  for (let i = items.length - 1; i >= 0; i--) {
    const mark = w.written();
    writeItem(w, items[i] as V);
    w.ldelim(mark, tag);
  }
}

/**
 * One buffer reused across calls (responses are written into it, then copied out at their exact
 * size), so a large response does not allocate and discard a large buffer each time. It is
 * dropped when it has grown past this size.
 */
const MAX_SCRATCH_BYTES = 16 * 2 ** 20;
let scratch: Buffer | undefined;

/** Encode a RunFunctionResponse. Throws on values a Struct cannot hold (bigint, functions). */
export function encodeRunFunctionResponse(rsp: RunFunctionResponse): Buffer {
  return Buffer.from(encodeRunFunctionResponseView(rsp));
}

/**
 * Encode into a buffer reused across calls and return a view of the bytes, valid until the next
 * call: for a caller that copies them at once. The server's serializer is one: grpc-js frames a
 * serialized message into a buffer of its own as soon as the serializer returns (grpc-js 1.14,
 * server-interceptors.ts serializeMessage), which saves a copy of every response here.
 */
export function encodeRunFunctionResponseView(rsp: RunFunctionResponse): Buffer {
  // Taken, not shared: a getter in the response could call back into the encoder.
  const w = new ReverseWriter(scratch ?? 64 * 1024);
  scratch = undefined;
  try {
    writeResponse(w, rsp);
    return w.finish();
  } finally {
    if (w.buf.length <= MAX_SCRATCH_BYTES) scratch = w.buf;
  }
}

function writeResponse(w: ReverseWriter, rsp: RunFunctionResponse): void {
  if (rsp.output !== undefined) structField(w, 0x3a, rsp.output);
  repeated(w, 0x32, rsp.conditions, writeCondition);
  if (rsp.requirements !== undefined) {
    const mark = w.written();
    writeRequirements(w, rsp.requirements);
    w.ldelim(mark, 0x2a);
  }
  if (rsp.context !== undefined) structField(w, 0x22, rsp.context);
  repeated(w, 0x1a, rsp.results, writeResult);
  if (rsp.desired !== undefined) {
    const mark = w.written();
    writeState(w, rsp.desired);
    w.ldelim(mark, 0x12);
  }
  if (rsp.meta !== undefined) {
    const meta = rsp.meta;
    const mark = w.written();
    if (meta.ttl !== undefined) {
      const ttl = w.written();
      if (meta.ttl.nanos !== 0) int32Field(w, 0x10, meta.ttl.nanos);
      if (meta.ttl.seconds !== 0) {
        const s = meta.ttl.seconds;
        if (!Number.isSafeInteger(s)) throw new Error(`invalid int64: ${String(s)}`);
        w.int64(s);
        w.byte(0x08);
      }
      w.ldelim(ttl, 0x12);
    }
    if (meta.tag !== '') w.stringField(0x0a, asString(meta.tag));
    w.ldelim(mark, 0x0a);
  }
}
