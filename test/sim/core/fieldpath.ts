// Crossplane field paths ("spec.forProvider.manifest.data[HF_TOKEN]", "items[0].name"), as
// crossplane-runtime pkg/fieldpath parses them: '.'-separated fields, '[key]' or '[index]'.
// provider-kubernetes reads patchesFrom.fieldPath and writes toFieldPath with them
// (apis/namespaced/object/v1alpha1/types.go ApplyFromFieldPathPatch).
import { isObj, type Json } from './json.js';

export type Segment = { field: string } | { index: number };

export function parseFieldPath(path: string): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  let field = '';
  const flush = (): void => {
    if (field !== '') out.push({ field });
    field = '';
  };
  while (i < path.length) {
    const c = path[i] ?? '';
    if (c === '.') {
      flush();
      i++;
    } else if (c === '[') {
      flush();
      const end = path.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated '[' in field path ${path}`);
      const key = path.slice(i + 1, end);
      out.push(/^\d+$/.test(key) ? { index: Number(key) } : { field: key });
      i = end + 1;
    } else {
      field += c;
      i++;
    }
  }
  flush();
  return out;
}

/** The value at `path`; throws "<path>: no such field" as fieldpath.Paved.GetValue does. */
export function getValue(root: unknown, path: string): unknown {
  let cur: unknown = root;
  for (const s of parseFieldPath(path)) {
    if ('index' in s) {
      if (!Array.isArray(cur) || s.index >= cur.length) throw new Error(`${path}: no such field`);
      cur = cur[s.index];
    } else {
      if (!isObj(cur) || !(s.field in cur)) throw new Error(`${path}: no such field`);
      cur = cur[s.field];
    }
  }
  return cur;
}

/** Set `value` at `path`, creating objects on the way. */
export function setValue(root: Json, path: string, value: unknown): void {
  const segs = parseFieldPath(path);
  let cur: unknown = root;
  segs.forEach((s, i) => {
    const last = i === segs.length - 1;
    const next = segs[i + 1];
    if ('index' in s) {
      if (!Array.isArray(cur)) throw new Error(`${path}: not an array`);
      const list = cur as unknown[];
      if (last) list[s.index] = structuredClone(value);
      else {
        if (!isObj(list[s.index]) && !Array.isArray(list[s.index]))
          list[s.index] = next !== undefined && 'index' in next ? [] : {};
        cur = list[s.index];
      }
    } else {
      if (!isObj(cur)) throw new Error(`${path}: not an object`);
      const o = cur;
      if (last) o[s.field] = structuredClone(value);
      else {
        if (!isObj(o[s.field]) && !Array.isArray(o[s.field]))
          o[s.field] = next !== undefined && 'index' in next ? [] : {};
        cur = o[s.field];
      }
    }
  });
}
