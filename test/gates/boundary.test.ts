// The import boundary between the fetch program and the Function (eslint.config.js) shown
// failing and passing: ESLint's own API lints a snippet as if it were a file on each side.
// The file paths are real files, because the type-aware config only parses files of the
// project; the snippet replaces their text for the lint and nothing is written.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const FETCH =
  'the fetch program imports only function/fetch/ and function/contract/ (the shared contract): move what both sides need into function/contract/';
const FUNCTION =
  'the Function does not import the fetch program: what both sides need belongs in function/contract/';
const CONTRACT =
  'function/contract/ imports neither the Function nor the fetch program: it is what they share';

const eslint = new ESLint({ cwd: ROOT });

async function boundaryReports(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  if (result === undefined) throw new Error(`no lint result for ${file}`);
  const fatal = result.messages.filter((m) => m.fatal === true);
  if (fatal.length > 0) throw new Error(`${file}: ${fatal.map((m) => m.message).join('; ')}`);
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const restricted = (specifier: string, message: string): string =>
  `'${specifier}' import is restricted from being used by a pattern. ${message}`;

describe('the fetch/Function import boundary (no-restricted-imports in eslint.config.js)', () => {
  const cases: { reason: string; file: string; code: string; reports: string[] }[] = [
    {
      reason: 'the fetch program importing the Function is reported',
      file: 'function/fetch/cli.ts',
      code: "import { API_VERSION } from '../constants.js';\nexport const v = API_VERSION;\n",
      reports: [restricted('../constants.js', FETCH)],
    },
    {
      reason: 'a fetch source importing the Function is reported (one directory deeper)',
      file: 'function/fetch/sources/s3.ts',
      code: "import { objectName } from '../../api/common.js';\nexport const n = objectName;\n",
      reports: [restricted('../../api/common.js', FETCH)],
    },
    {
      reason: 'the fetch program importing the contract and itself passes',
      file: 'function/fetch/sources/s3.ts',
      code: [
        "import type { FetchPlan } from '../../contract/plan.js';",
        "import { FetchError } from '../errors.js';",
        "import { fetchRanged } from '../ranged.js';",
        'export type P = FetchPlan;',
        'export const e = [FetchError, fetchRanged];',
        '',
      ].join('\n'),
      reports: [],
    },
    {
      reason: 'the Function importing the fetch program is reported, a type-only import too',
      file: 'function/modelcache/manifests.ts',
      code: "import type { RunResult } from '../fetch/run.js';\nexport type R = RunResult;\n",
      reports: [restricted('../fetch/run.js', FUNCTION)],
    },
    {
      reason: 'the Function re-exporting the fetch program is reported',
      file: 'function/dispatch.ts',
      code: "export { runFetch } from './fetch/run.js';\n",
      reports: [restricted('./fetch/run.js', FUNCTION)],
    },
    {
      reason: 'the Function importing the contract passes',
      file: 'function/modelcache/sources/types.ts',
      code: "import type { FetchPlanSource } from '../../contract/plan.js';\nexport type S = FetchPlanSource;\n",
      reports: [],
    },
    {
      reason: 'the contract importing the Function is reported',
      file: 'function/contract/plan.ts',
      code: "import { API_VERSION } from '../constants.js';\nexport const v = API_VERSION;\n",
      reports: [restricted('../constants.js', CONTRACT)],
    },
    {
      reason: 'the contract importing the fetch program is reported',
      file: 'function/contract/plan.ts',
      code: "import { FetchError } from '../fetch/errors.js';\nexport const e = FetchError;\n",
      reports: [restricted('../fetch/errors.js', CONTRACT)],
    },
  ];
  for (const c of cases) {
    it(c.reason, async () => {
      expect(await boundaryReports(c.file, c.code)).toEqual(c.reports);
    });
  }
});
