// npm run generate:xrds — writes every XRD (apis/<plural>/definition.yaml) and the input CRD generated from zod
// (test/schema/xrd-from-zod.ts), after a change to a zod schema or to a metadata file. Review
// the diff; test/schema/xrd-drift.test.ts fails while a committed XRD differs from this output.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { GENERATED_XRDS, ROOT, fileOf, generateXrd } from './xrd-from-zod.js';

for (const [name, { parts }] of Object.entries(GENERATED_XRDS)) {
  const file = fileOf(name);
  writeFileSync(join(ROOT, file), await generateXrd(name, parts));
  console.log(`generate:xrds: wrote ${file}`);
}
