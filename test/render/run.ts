// Rendering an example case in process: the same inputs `crossplane composition render` gets
// (see test/conformance/examples.ts for the folder convention), handed to engine.ts with this
// repository's Function.
import { pino } from 'pino';
import { runFunction } from '../../function/dispatch.js';
import {
  normalizeDocuments,
  readDocs,
  type RenderCase,
  type RenderOutcome,
} from '../conformance/examples.js';
import { render, type Doc, type RenderOutput } from './engine.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The Function name the Compositions call. */
export const FUNCTION_NAME = 'function-modelcache';

function docsAt(path: string): Doc[] {
  if (!statSync(path).isDirectory()) return readDocs(path);
  return readdirSync(path)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => docsAt(join(path, f)));
}

function single(path: string): Doc {
  const docs = readDocs(path);
  if (docs.length !== 1)
    throw new Error(`${path}: want exactly one document, found ${docs.length}`);
  return docs[0] as Doc;
}

export async function renderCaseInProcess(c: RenderCase): Promise<RenderOutput> {
  // A render never waits on I/O: yield once, so a caller rendering many in a row (make-stages,
  // a vitest worker) still lets its event loop answer what is pending.
  await new Promise<void>((resolve) => setImmediate(resolve));
  return render({
    xr: single(c.xrPath),
    composition: single(c.compositionPath),
    xrd: single(c.xrdPath),
    observed: c.observedPath && existsSync(c.observedPath) ? docsAt(c.observedPath) : [],
    required: c.requiredPaths.flatMap(docsAt),
    functions: { [FUNCTION_NAME]: runFunction },
    log: pino({ level: 'silent' }),
  });
}

/** The outcome in the form the goldens store (results included, as render -r prints them). */
export function outcomeOf(out: RenderOutput): RenderOutcome {
  if ('fatal' in out) return { fatal: out.fatal };
  return { documents: normalizeDocuments([...out.documents, ...out.results]) };
}
