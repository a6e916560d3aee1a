import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Checked-in expected outputs live here; `UPDATE_GOLDEN=1 npm test` rewrites them. */
export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
export const UPDATING = process.env['UPDATE_GOLDEN'] === '1';

/** JSON as it crosses the wire: undefined fields dropped, key order kept. */
export function wire(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

/**
 * The golden value for `name`: written from `actual` when updating, otherwise read.
 * Compare the whole output against it; a missing golden is an error, not a pass.
 */
export function golden(name: string, actual: unknown): unknown {
  const path = join(GOLDEN_DIR, `${name}.json`);
  if (UPDATING) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(wire(actual), null, 2)}\n`);
  }
  if (!existsSync(path)) {
    throw new Error(`golden file ${path} is missing: run UPDATE_GOLDEN=1 npm test and review it`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}
