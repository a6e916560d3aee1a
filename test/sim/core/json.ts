// Plain-JSON helpers shared by the simulator: objects as the API server stores them.

export type Json = Record<string, unknown>;

export function isObj(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Deep equality of JSON values (key order ignored), as equality.Semantic.DeepEqual does for JSON. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

export function at(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const k of path) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

export function str(v: unknown, ...path: string[]): string | undefined {
  const x = at(v, ...path);
  return typeof x === 'string' ? x : undefined;
}

export function num(v: unknown, ...path: string[]): number | undefined {
  const x = at(v, ...path);
  return typeof x === 'number' ? x : undefined;
}

export function obj(v: unknown, ...path: string[]): Json | undefined {
  const x = at(v, ...path);
  return isObj(x) ? x : undefined;
}

export function arr(v: unknown, ...path: string[]): unknown[] {
  const x = at(v, ...path);
  return Array.isArray(x) ? x : [];
}

/** The object at `path`, created (as {}) where missing. */
export function ensure(v: Json, ...path: string[]): Json {
  let cur = v;
  for (const k of path) {
    const next = cur[k];
    if (isObj(next)) cur = next;
    else {
      const made: Json = {};
      cur[k] = made;
      cur = made;
    }
  }
  return cur;
}

/** RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Json = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A condition as Kubernetes writes it. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export function conditions(o: unknown, ...path: string[]): Condition[] {
  return arr(o, ...path).filter((c): c is Condition => isObj(c) && typeof c['type'] === 'string');
}

export function condition(o: unknown, type: string, ...path: string[]): Condition | undefined {
  return conditions(o, ...(path.length > 0 ? path : ['status', 'conditions'])).find(
    (c) => c.type === type,
  );
}

/**
 * Set a condition the way crossplane-runtime's ConditionedStatus.SetConditions does: an
 * equal condition (type, status, reason, message) keeps its lastTransitionTime.
 */
export function setCondition(list: Condition[], c: Condition, now: string): Condition[] {
  const out = [...list];
  const i = out.findIndex((x) => x.type === c.type);
  const prev = i >= 0 ? out[i] : undefined;
  const same =
    prev !== undefined &&
    prev.status === c.status &&
    (prev.reason ?? '') === (c.reason ?? '') &&
    (prev.message ?? '') === (c.message ?? '');
  const next: Condition = {
    type: c.type,
    status: c.status,
    ...(c.reason !== undefined && c.reason !== '' ? { reason: c.reason } : {}),
    ...(c.message !== undefined && c.message !== '' ? { message: c.message } : {}),
    lastTransitionTime: same ? (prev.lastTransitionTime ?? now) : now,
    ...(c.observedGeneration !== undefined ? { observedGeneration: c.observedGeneration } : {}),
  };
  if (i >= 0) out[i] = next;
  else out.push(next);
  return out;
}
