import { asJson, type Json } from '../k8s/object.js';
import { dnsLabel, sha256Hex } from '../k8s/names.js';

/** One cache as a pod mounts it on one cluster. */
export interface CacheMount {
  cache: string;
  kind: string | undefined;
  claimName: string;
  mountPath: string;
}

/** Volume name for a cache: stable, so injecting twice replaces rather than duplicates. */
export function volumeName(cache: string): string {
  return dnsLabel(`modelcache-${cache}`);
}

function envSuffix(s: string): string {
  return s
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/**
 * Env vars exposing mount paths, so engine args need no hard-coded path:
 * MODELCACHE_<KIND>_PATH when exactly one cache of that kind is mounted, and
 * MODELCACHE_PATH_<CACHE NAME> for every cache.
 */
export function cacheEnv(mounts: CacheMount[]): Json[] {
  const env: Json[] = [];
  const byKind = new Map<string, CacheMount[]>();
  for (const m of mounts) {
    if (m.kind !== undefined) byKind.set(m.kind, [...(byKind.get(m.kind) ?? []), m]);
  }
  for (const [kind, list] of [...byKind.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const only = list.length === 1 ? list[0] : undefined;
    if (only) env.push({ name: `MODELCACHE_${envSuffix(kind)}_PATH`, value: only.mountPath });
  }
  // Names like a-b and a.b give the same suffix: those get a short hash so neither is lost.
  const suffixes = mounts.map((m) => envSuffix(m.cache));
  mounts.forEach((m, i) => {
    const suffix = suffixes[i] ?? '';
    const clash = suffixes.filter((s) => s === suffix).length > 1;
    const unique = clash ? `${suffix}_${sha256Hex(m.cache).slice(0, 6).toUpperCase()}` : suffix;
    env.push({ name: `MODELCACHE_PATH_${unique}`, value: m.mountPath });
  });
  return env;
}

/** Replace entries with the same key, keep every other entry in its place, append the rest. */
function upsert(list: unknown, items: Json[], key: (j: Json) => unknown): Json[] {
  const existing = Array.isArray(list) ? list.map((e) => asJson(e) ?? {}) : [];
  const keys = new Set(items.map(key));
  return [...existing.filter((e) => !keys.has(key(e))), ...items];
}

function withMounts(container: Json, mounts: CacheMount[], env: Json[]): Json {
  const paths = new Set(mounts.map((m) => m.mountPath));
  const names = new Set(mounts.map((m) => volumeName(m.cache)));
  // A mount of something else at a cache's path would shadow the cache: ours wins.
  const kept = (Array.isArray(container['volumeMounts']) ? container['volumeMounts'] : [])
    .map((v) => asJson(v) ?? {})
    .filter((v) => !paths.has(String(v['mountPath'])) && !names.has(String(v['name'])));
  return {
    ...container,
    volumeMounts: [
      ...kept,
      ...mounts.map((m) => ({ name: volumeName(m.cache), mountPath: m.mountPath, readOnly: true })),
    ],
    env: upsert(container['env'], env, (e) => e['name']),
  };
}

/**
 * A pod spec with every cache mounted read-only into every container (init containers
 * included), leaving everything else as it was. Pure: the input is not modified.
 */
export function injectCaches(podSpec: Json, mounts: CacheMount[]): Json {
  if (mounts.length === 0) return podSpec;
  const env = cacheEnv(mounts);
  const volumes = mounts.map((m) => ({
    name: volumeName(m.cache),
    persistentVolumeClaim: { claimName: m.claimName, readOnly: true },
  }));
  const out: Json = { ...podSpec, volumes: upsert(podSpec['volumes'], volumes, (v) => v['name']) };
  for (const field of ['containers', 'initContainers'] as const) {
    const list = podSpec[field];
    if (Array.isArray(list)) out[field] = list.map((c) => withMounts(asJson(c) ?? {}, mounts, env));
  }
  return out;
}
