// Run after the whole suite (CI does): every golden under test/golden must have been compared by
// some test in that run, or it is an orphan that nothing checks any more. The conformance
// goldens are the examples' render cases, checked against the case list instead. The verdict
// is test/gates/orphan-goldens.ts, shown failing in test/gates/gates.test.ts.
//
//   npx tsx test/check-goldens.ts
import { rmSync } from 'node:fs';
import { allCases } from './conformance/examples.js';
import { notedGoldens, orphanGoldens } from './gates/orphan-goldens.js';
import { GOLDEN_DIR, GOLDEN_USED_DIR } from './support/golden.js';

const used = notedGoldens(GOLDEN_USED_DIR);
for (const c of allCases()) used.add(c.golden);
const verdict = orphanGoldens(GOLDEN_DIR, used);
rmSync(GOLDEN_USED_DIR, { recursive: true, force: true });
if (!verdict.ok) {
  console.error(verdict.message);
  process.exit(1);
}
console.log(verdict.message);
