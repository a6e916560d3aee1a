// Run after the whole suite (CI does): every golden under test/golden must have been compared by
// some test in that run, or it is an orphan that nothing checks any more. The conformance
// goldens are the examples' render cases, checked against the case list instead.
//
//   npx tsx test/check-goldens.ts
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { allCases } from './conformance/examples.js';
import { GOLDEN_DIR, GOLDEN_USED_DIR } from './support/golden.js';

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? jsonFiles(join(dir, e.name))
      : e.name.endsWith('.json')
        ? [relative(GOLDEN_DIR, join(dir, e.name)).replace(/\.json$/, '')]
        : [],
  );
}

const used = new Set<string>();
if (existsSync(GOLDEN_USED_DIR)) {
  for (const f of readdirSync(GOLDEN_USED_DIR)) {
    for (const line of readFileSync(join(GOLDEN_USED_DIR, f), 'utf8').split('\n')) {
      if (line !== '') used.add(line);
    }
  }
}
for (const c of allCases()) used.add(c.golden);

const all = jsonFiles(GOLDEN_DIR);
const orphans = all.filter((g) => !used.has(g)).sort();
rmSync(GOLDEN_USED_DIR, { recursive: true, force: true });
if (used.size === 0 || orphans.length > 0) {
  console.error(
    used.size === 0
      ? 'check-goldens: no test recorded a golden: run the whole suite (npm test) first'
      : `check-goldens: ${String(orphans.length)} golden file(s) no test compares any more (delete them, or restore the test):\n${orphans.map((o) => `  test/golden/${o}.json`).join('\n')}`,
  );
  process.exit(1);
}
console.log(`check-goldens: ${String(all.length)} golden files, every one compared by a test`);
