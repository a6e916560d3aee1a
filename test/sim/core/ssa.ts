// A field-ownership model of server-side apply, enough for what the product depends on
// (Kubernetes structured-merge-diff, as Crossplane uses it):
//  - an apply by a manager sets the fields of its configuration and takes them over (force);
//  - a field the manager applied before and leaves out now is removed, unless another
//    manager owns it ("status is replaced by the function's full intent", PLATFORM-FACTS);
//  - a plain update records the fields it changed as owned by its manager, so a field the
//    provider wrote (a value patched in from a Secret) survives Crossplane's next apply.
// Simplifications: every list is atomic (no listType=map merging), and ownership is tracked
// on leaves (a non-empty object is owned through its leaves).
import { clone, isObj, type Json } from './json.js';

const SEP = '\u0001';
export type FieldSets = Map<string, Set<string>>;

export function leaves(v: unknown, prefix: string[] = [], out = new Map<string, unknown>()) {
  if (isObj(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) leaves(x, [...prefix, k], out);
    }
  } else if (prefix.length > 0) {
    out.set(prefix.join(SEP), v);
  }
  return out;
}

function related(a: string, b: string): boolean {
  return a === b || a.startsWith(b + SEP) || b.startsWith(a + SEP);
}

function setAt(root: Json, key: string, value: unknown): void {
  const path = key.split(SEP);
  let cur = root;
  path.forEach((k, i) => {
    if (i === path.length - 1) {
      cur[k] = clone(value);
      return;
    }
    const next = cur[k];
    if (isObj(next)) cur = next;
    else {
      const made: Json = {};
      cur[k] = made;
      cur = made;
    }
  });
}

function ownedBelow(sets: FieldSets, prefix: string): boolean {
  for (const s of sets.values()) {
    for (const p of s) if (p === prefix || p.startsWith(prefix + SEP)) return true;
  }
  return false;
}

function removeAt(root: Json, key: string, sets: FieldSets): void {
  const path = key.split(SEP);
  const chain: Json[] = [root];
  let cur: unknown = root;
  for (const k of path.slice(0, -1)) {
    if (!isObj(cur)) return;
    cur = cur[k];
    if (!isObj(cur)) return;
    chain.push(cur);
  }
  const last = path[path.length - 1];
  const parent = chain[chain.length - 1];
  if (last === undefined || parent === undefined) return;
  Reflect.deleteProperty(parent, last);
  // Prune maps left empty that nobody owns anything under.
  for (let i = chain.length - 1; i >= 1; i--) {
    const node = chain[i];
    const up = chain[i - 1];
    const name = path[i - 1];
    if (node === undefined || up === undefined || name === undefined) break;
    if (Object.keys(node).length > 0) break;
    const prefix = path.slice(0, i).join(SEP);
    if (ownedBelow(sets, prefix)) break;
    Reflect.deleteProperty(up, name);
  }
}

/**
 * Apply `config` (already scoped: only the parts of the object this apply covers) as
 * `manager` with force. Returns the new object; `sets` is updated in place.
 */
export function applyConfig(current: Json, config: Json, manager: string, sets: FieldSets): Json {
  const out = clone(current);
  const next = leaves(config);
  const prev = sets.get(manager) ?? new Set<string>();
  const others = new Map([...sets].filter(([m]) => m !== manager));
  for (const p of prev) {
    if (next.has(p)) continue;
    const ownedByOther = [...others.values()].some((s) => s.has(p));
    if (!ownedByOther) removeAt(out, p, others);
  }
  for (const [p, v] of next) {
    // A leaf replacing an object (or the reverse) drops what was under or over it.
    for (const [, s] of sets) {
      for (const q of [...s]) if (q !== p && related(p, q)) s.delete(q);
    }
    setAt(out, p, v);
  }
  for (const s of others.values()) for (const p of next.keys()) s.delete(p);
  sets.set(manager, new Set(next.keys()));
  return out;
}

/** Record a plain update: leaves it changed or added become `manager`'s; removed ones nobody's. */
export function recordUpdate(before: Json, after: Json, manager: string, sets: FieldSets): void {
  const a = leaves(before);
  const b = leaves(after);
  const mine = sets.get(manager) ?? new Set<string>();
  for (const [p, v] of b) {
    if (a.has(p) && JSON.stringify(a.get(p)) === JSON.stringify(v)) continue;
    for (const [m, s] of sets)
      if (m !== manager) for (const q of [...s]) if (related(p, q)) s.delete(q);
    mine.add(p);
  }
  for (const p of a.keys()) {
    if (b.has(p)) continue;
    for (const s of sets.values()) s.delete(p);
  }
  sets.set(manager, mine);
}
