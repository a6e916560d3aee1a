// npm run generate:xrds — writes apis/<plural>/definition.yaml for every XRD generated from zod
// (test/schema/xrd-from-zod.ts), after a change to a zod schema or to a metadata file. Review
// the diff; test/schema/xrd-drift.test.ts fails while a committed XRD differs from this output.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { GENERATED_XRDS, ROOT, generateXrd } from './xrd-from-zod.js';

for (const [plural, { parts }] of Object.entries(GENERATED_XRDS)) {
  const file = join('apis', plural, 'definition.yaml');
  writeFileSync(join(ROOT, file), await generateXrd(plural, parts));
  console.log(`generate:xrds: wrote ${file}`);
}
