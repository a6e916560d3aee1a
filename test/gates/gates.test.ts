// Each CI gate shown failing, and passing where it should, so none is a gate that cannot fail:
// the dirty-tree gate (clean-tree.sh, run in a scratch repository), the orphan-golden verdict
// (on scratch golden folders) and the refusal of UPDATE_GOLDEN under CI (golden.ts imported by
// a child process with the environment of each case).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

import { notedGoldens, orphanGoldens } from './orphan-goldens.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const GOLDEN_MODULE = join(HERE, '..', 'support', 'golden.ts');

const scratch: string[] = [];
afterEach(() => {
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratchDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'modelcache-gate-'));
  scratch.push(d);
  return d;
}

/** The environment with no CI, git or golden settings of the run that hosts this test. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k !== 'CI' && k !== 'UPDATE_GOLDEN' && !k.startsWith('GIT_')) env[k] = v;
  }
  return { ...env, ...extra };
}

describe('the clean-tree gate (test/gates/clean-tree.sh)', () => {
  const FAILED =
    'clean-tree: the suite changed the tree (above): a test wrote into the repository\n';
  const cases: {
    reason: string;
    change: (repo: string) => void;
    inRepo: boolean;
    status: number;
    stdout: string;
    stderr: string;
  }[] = [
    {
      reason: 'a tree as checked out passes',
      change: () => undefined,
      inRepo: true,
      status: 0,
      stdout: 'clean-tree: the tree is as checked out\n',
      stderr: '',
    },
    {
      reason: 'a file a test wrote fails, and is listed',
      change: (repo) => {
        writeFileSync(join(repo, 'written-by-a-test.json'), '{}\n');
      },
      inRepo: true,
      status: 1,
      stdout: '?? written-by-a-test.json\n',
      stderr: FAILED,
    },
    {
      reason: 'a golden a test rewrote fails, and is listed',
      change: (repo) => {
        writeFileSync(join(repo, 'golden.json'), '{"moved": true}\n');
      },
      inRepo: true,
      status: 1,
      stdout: ' M golden.json\n',
      stderr: FAILED,
    },
    {
      reason: 'where git cannot tell (no repository) it fails instead of passing unseen',
      change: () => undefined,
      inRepo: false,
      status: 1,
      stdout: '',
      stderr: 'clean-tree: git status failed: cannot tell whether the suite changed the tree\n',
    },
  ];

  it.each(cases)('$reason', ({ change, inRepo, status, stdout, stderr }) => {
    const root = scratchDir();
    const repo = join(root, 'repo');
    mkdirSync(repo);
    // Git must not find a repository above the scratch folder (the case without one).
    const env = cleanEnv({ GIT_CEILING_DIRECTORIES: root });
    if (inRepo) {
      const git = (...args: string[]): void => {
        execFileSync('git', ['-c', 'user.name=gate', '-c', 'user.email=gate@test', ...args], {
          cwd: repo,
          env,
          stdio: 'ignore',
        });
      };
      git('init', '-q');
      writeFileSync(join(repo, 'golden.json'), '{}\n');
      git('add', 'golden.json');
      git('commit', '-q', '-m', 'checked out');
    }
    change(repo);
    const run = spawnSync('bash', [join(HERE, 'clean-tree.sh')], {
      cwd: repo,
      env,
      encoding: 'utf8',
    });
    expect({ status: run.status, stdout: run.stdout, stderr: run.stderr }).toEqual({
      status,
      stdout,
      stderr,
    });
  });
});

describe('the orphan-golden gate (test/gates/orphan-goldens.ts)', () => {
  const cases: { reason: string; goldens: string[]; noted: string[][]; verdict: unknown }[] = [
    {
      reason: 'every golden compared by some test process passes',
      goldens: ['grpc/a', 'modelcache/b'],
      noted: [['grpc/a'], ['modelcache/b', 'grpc/a']],
      verdict: {
        ok: true,
        message: 'check-goldens: 2 golden files, every one compared by a test',
      },
    },
    {
      reason: 'a golden no test compares any more fails, and is named',
      goldens: ['grpc/a', 'modelcache/b', 'modelcache/c'],
      noted: [['grpc/a', 'modelcache/c']],
      verdict: {
        ok: false,
        message:
          'check-goldens: 1 golden file(s) no test compares any more (delete them, or restore the test):\n  test/golden/modelcache/b.json',
      },
    },
    {
      reason: 'a run in which no test noted any golden fails (the suite did not run first)',
      goldens: ['grpc/a'],
      noted: [],
      verdict: {
        ok: false,
        message: 'check-goldens: no test recorded a golden: run the whole suite (npm test) first',
      },
    },
  ];

  it.each(cases)('$reason', ({ goldens, noted, verdict }) => {
    const root = scratchDir();
    const goldenDir = join(root, 'golden');
    const usedDir = join(root, 'golden-used');
    for (const g of goldens) {
      mkdirSync(dirname(join(goldenDir, g)), { recursive: true });
      writeFileSync(join(goldenDir, `${g}.json`), '{}\n');
    }
    if (noted.length > 0) mkdirSync(usedDir);
    noted.forEach((names, pid) => {
      writeFileSync(join(usedDir, `${String(pid)}.txt`), `${names.join('\n')}\n`);
    });
    expect(orphanGoldens(goldenDir, notedGoldens(usedDir))).toEqual(verdict);
  });
});

describe('UPDATE_GOLDEN under CI (test/support/golden.ts)', () => {
  const REFUSED =
    'UPDATE_GOLDEN=1 is refused under CI: goldens are regenerated locally, reviewed and committed\n';
  const cases: { reason: string; env: Record<string, string>; status: number; stdout: string }[] = [
    {
      reason: 'is refused when CI is set: a golden written then compared with itself cannot fail',
      env: { CI: '1', UPDATE_GOLDEN: '1' },
      status: 1,
      stdout: REFUSED,
    },
    {
      reason: 'is refused whatever value CI has',
      env: { CI: 'true', UPDATE_GOLDEN: '1' },
      status: 1,
      stdout: REFUSED,
    },
    {
      reason: 'is allowed outside CI, where goldens are regenerated and reviewed',
      env: { UPDATE_GOLDEN: '1' },
      status: 0,
      stdout: 'loaded\n',
    },
    {
      reason: 'an empty CI is not CI',
      env: { CI: '', UPDATE_GOLDEN: '1' },
      status: 0,
      stdout: 'loaded\n',
    },
    {
      reason: 'CI without the flag compares goldens as usual',
      env: { CI: '1' },
      status: 0,
      stdout: 'loaded\n',
    },
  ];

  it.each(cases)('$reason', ({ env, status, stdout }) => {
    const script = `try { await import(${JSON.stringify(GOLDEN_MODULE)}); console.log('loaded'); } catch (err) { console.log(err.message); process.exit(1); }`;
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      { env: cleanEnv(env), encoding: 'utf8' },
    );
    expect({ status: run.status, stdout: run.stdout }).toEqual({ status, stdout });
  });
});
