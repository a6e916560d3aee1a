import { appendFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Checked-in expected outputs live here; `UPDATE_GOLDEN=1 npm test` rewrites them. */
export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
export const UPDATING = process.env['UPDATE_GOLDEN'] === '1';
/** Where each test process notes the goldens it read; test/check-goldens.ts finds the orphans. */
export const GOLDEN_USED_DIR = join(GOLDEN_DIR, '..', '..', '.cache', 'golden-used');

// Under the flag a golden is written, then compared with itself: it cannot fail. CI refuses it.
if (UPDATING && process.env['CI'] !== undefined && process.env['CI'] !== '') {
  throw new Error(
    'UPDATE_GOLDEN=1 is refused under CI: goldens are regenerated locally, reviewed and committed',
  );
}

/** Note that `name` (relative to GOLDEN_DIR, without .json) was compared by a test. */
export function markGoldenUsed(name: string): void {
  mkdirSync(GOLDEN_USED_DIR, { recursive: true });
  appendFileSync(join(GOLDEN_USED_DIR, `${String(process.pid)}.txt`), `${name}\n`);
}

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
  markGoldenUsed(name);
  if (UPDATING) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(wire(actual), null, 2)}\n`);
  }
  if (!existsSync(path)) {
    throw new Error(`golden file ${path} is missing: run UPDATE_GOLDEN=1 npm test and review it`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}
