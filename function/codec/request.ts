// RunFunctionRequest bytes → the SDK's RunFunctionRequest shape, with every Struct as plain JSON
// and no ts-proto message objects in between. Field by field it matches what the SDK's ts-proto
// decoder returns (the tests compare the two), except that it is stricter on malformed bytes
// (field number 0, groups and overrunning lengths are errors, not silently cut messages) and
// allows Structs nested deeper than ts-proto's 100-message recursion limit.
//
// Laziness (the default): the observed and desired composed resources, the desired XR, the
// context and required schemas are decoded on first touch, a Struct level at a time, and are
// copied through as bytes when they reach the response untouched. The observed XR, the required
// resources and the input, which the cores read whole, are decoded at once.
//
// Credentials are kept as bytes and never decoded into strings; nothing here logs.

import type {
  Credentials,
  Resource,
  Resources,
  RunFunctionRequest,
  Schema,
  State,
} from '@crossplane-org/function-sdk-typescript';

import {
  EAGER,
  LAZY_LARGE,
  decodeStruct,
  decodeStructLazily,
  type DecodeMode,
  type JsonObject,
} from './struct.js';
import { Reader } from './wire.js';

type RequestMeta = NonNullable<RunFunctionRequest['meta']>;

/** An enum field as int32, as ts-proto reads it: numbers the enum does not name are kept. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- E is the enum the number is stored as, inferred from where it goes
function enumNumber<E extends number>(varint: number): E {
  return (varint | 0) as E;
}

export interface DecodeOptions {
  /** Decode large Structs of composed resources on first touch (default true). */
  lazy?: boolean;
  /** With `lazy`: the size from which a Struct is lazy (default LAZY_MIN_BYTES; tests use 0). */
  lazyMinBytes?: number;
}

interface Modes {
  /** Structs the cores read whole. */
  whole: DecodeMode;
  /** Structs that may pass through untouched. */
  passThrough: DecodeMode;
}

function setEntry<T>(map: Record<string, T>, key: string, value: T | undefined): void {
  // ts-proto assigns into a plain object, where "__proto__" sets the prototype instead of a key.
  if (value !== undefined && key !== '__proto__') map[key] = value;
}

/** A length-delimited field: call `read` with the field's end and check it ended there. */
function nested<T>(r: Reader, end: number, read: (r: Reader, end: number) => T): T {
  const fieldEnd = r.fieldEnd(end);
  const value = read(r, fieldEnd);
  r.expectEnd(fieldEnd);
  return value;
}

function struct(mode: DecodeMode): (r: Reader, end: number) => JsonObject {
  return (r, end) => {
    const value = decodeStruct(r.buf, r.pos, end, mode);
    r.pos = end;
    return value;
  };
}

/** A resource's Struct: lazy whatever its size when `mode` is (see decodeStructLazily). */
function resourceStruct(mode: DecodeMode): (r: Reader, end: number) => JsonObject {
  return (r, end) => {
    const value = decodeStructLazily(r.buf, r.pos, end, mode);
    r.pos = end;
    return value;
  };
}

function bytes(r: Reader, end: number): Buffer {
  const len = r.length(end);
  const start = r.pos;
  r.pos += len;
  return Buffer.from(r.buf.subarray(start, start + len));
}

/** A map<string, V> entry: key field 1, value field 2. */
function mapEntry<V>(
  r: Reader,
  end: number,
  readValue: (r: Reader, end: number) => V,
): [string, V | undefined] {
  let key = '';
  let value: V | undefined;
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === 0x0a) key = r.string(end);
    else if (tag === 0x12) value = readValue(r, end);
    else r.skip(tag & 7, end);
  }
  return [key, value];
}

function readMeta(r: Reader, end: number): RequestMeta {
  const meta: RequestMeta = { tag: '', capabilities: [] };
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === 0x0a) {
      meta.tag = r.string(end);
    } else if (tag === 0x10) {
      meta.capabilities.push(enumNumber(r.uint32()));
    } else if (tag === 0x12) {
      const packedEnd = r.fieldEnd(end);
      while (r.pos < packedEnd) meta.capabilities.push(enumNumber(r.uint32()));
      r.expectEnd(packedEnd);
    } else {
      r.skip(tag & 7, end);
    }
  }
  return meta;
}

/** Composed resources rarely carry connection details: those without share this empty map. */
export const NO_CONNECTION_DETAILS: Resource['connectionDetails'] = Object.freeze({});

function readResource(mode: DecodeMode): (r: Reader, end: number) => Resource {
  const readBody = resourceStruct(mode);
  return (r, end) => {
    const res: Resource = {
      resource: undefined,
      connectionDetails: NO_CONNECTION_DETAILS,
      ready: enumNumber(0),
    };
    while (r.pos < end) {
      const tag = r.tag();
      if (tag === 0x0a) {
        res.resource = nested(r, end, readBody);
      } else if (tag === 0x12) {
        const [key, value] = nested(r, end, (rr, e) => mapEntry(rr, e, (r3, e3) => bytes(r3, e3)));
        if (res.connectionDetails === NO_CONNECTION_DETAILS) res.connectionDetails = {};
        setEntry(res.connectionDetails, key, value ?? Buffer.alloc(0));
      } else if (tag === 0x18) {
        res.ready = enumNumber(r.uint32());
      } else {
        r.skip(tag & 7, end);
      }
    }
    return res;
  };
}

function readState(
  compositeMode: DecodeMode,
  resourcesMode: DecodeMode,
): (r: Reader, end: number) => State {
  const composite = readResource(compositeMode);
  const resource = readResource(resourcesMode);
  return (r, end) => {
    const state: State = { composite: undefined, resources: {} };
    while (r.pos < end) {
      const tag = r.tag();
      if (tag === 0x0a) {
        state.composite = nested(r, end, composite);
      } else if (tag === 0x12) {
        const [key, value] = nested(r, end, (rr, e) =>
          mapEntry(rr, e, (r3, e3) => nested(r3, e3, resource)),
        );
        setEntry(state.resources, key, value);
      } else {
        r.skip(tag & 7, end);
      }
    }
    return state;
  };
}

function readResources(mode: DecodeMode): (r: Reader, end: number) => Resources {
  const resource = readResource(mode);
  return (r, end) => {
    const out: Resources = { items: [] };
    while (r.pos < end) {
      const tag = r.tag();
      if (tag === 0x0a) out.items.push(nested(r, end, resource));
      else r.skip(tag & 7, end);
    }
    return out;
  };
}

function readCredentials(r: Reader, end: number): Credentials {
  const out: Credentials = { credentialData: undefined };
  while (r.pos < end) {
    const tag = r.tag();
    if (tag === 0x0a) {
      out.credentialData = nested(r, end, (rr, e) => {
        const data: Record<string, Buffer> = {};
        while (rr.pos < e) {
          const t = rr.tag();
          if (t === 0x0a) {
            const [key, value] = nested(rr, e, (r3, e3) =>
              mapEntry(r3, e3, (r4, e4) => bytes(r4, e4)),
            );
            setEntry(data, key, value ?? Buffer.alloc(0));
          } else {
            rr.skip(t & 7, e);
          }
        }
        return { data };
      });
    } else {
      r.skip(tag & 7, end);
    }
  }
  return out;
}

function readSchema(mode: DecodeMode): (r: Reader, end: number) => Schema {
  const openapi = struct(mode);
  return (r, end) => {
    const out: Schema = { openapiV3: undefined };
    while (r.pos < end) {
      const tag = r.tag();
      if (tag === 0x0a) out.openapiV3 = nested(r, end, openapi);
      else r.skip(tag & 7, end);
    }
    return out;
  };
}

function mapField<V>(
  r: Reader,
  end: number,
  into: Record<string, V>,
  readValue: (r: Reader, end: number) => V,
): void {
  const [key, value] = nested(r, end, (rr, e) =>
    mapEntry(rr, e, (r3, e3) => nested(r3, e3, readValue)),
  );
  setEntry(into, key, value);
}

/** Decode RunFunctionRequest bytes. Throws WireError on malformed bytes. */
export function decodeRunFunctionRequest(
  buf: Buffer,
  opts: DecodeOptions = {},
): RunFunctionRequest {
  const modes: Modes =
    opts.lazy === false
      ? { whole: EAGER, passThrough: EAGER }
      : {
          whole: EAGER,
          passThrough:
            opts.lazyMinBytes === undefined ? LAZY_LARGE : { lazyMinBytes: opts.lazyMinBytes },
        };
  const r = new Reader(buf);
  const end = buf.length;
  const req: RunFunctionRequest = {
    meta: undefined,
    observed: undefined,
    desired: undefined,
    input: undefined,
    context: undefined,
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- decoded for older Crossplane
    extraResources: {},
    credentials: {},
    requiredResources: {},
    requiredSchemas: {},
  };
  const observed = readState(modes.whole, modes.passThrough);
  const desired = readState(modes.passThrough, modes.passThrough);
  const resources = readResources(modes.passThrough);
  const schema = readSchema(modes.passThrough);
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag) {
      case 0x0a:
        req.meta = nested(r, end, readMeta);
        break;
      case 0x12:
        req.observed = nested(r, end, observed);
        break;
      case 0x1a:
        req.desired = nested(r, end, desired);
        break;
      case 0x22:
        req.input = nested(r, end, struct(modes.whole));
        break;
      case 0x2a:
        req.context = nested(r, end, struct(modes.passThrough));
        break;
      case 0x32:
        // eslint-disable-next-line @typescript-eslint/no-deprecated -- decoded for older Crossplane
        mapField(r, end, req.extraResources, resources);
        break;
      case 0x3a:
        mapField(r, end, req.credentials, readCredentials);
        break;
      case 0x42:
        mapField(r, end, req.requiredResources, resources);
        break;
      case 0x4a:
        mapField(r, end, req.requiredSchemas, schema);
        break;
      default:
        r.skip(tag & 7, end);
    }
  }
  return req;
}

/**
 * Only the request tag, for answering a request whose body cannot be decoded. Returns '' when
 * even the tag cannot be read.
 */
export function peekTag(buf: Buffer): string {
  try {
    const r = new Reader(buf);
    while (r.pos < buf.length) {
      const tag = r.tag();
      if (tag === 0x0a) return nested(r, buf.length, readMeta).tag;
      r.skip(tag & 7, buf.length);
    }
  } catch {
    // Malformed: no tag to copy.
  }
  return '';
}
