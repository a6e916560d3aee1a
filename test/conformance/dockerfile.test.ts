// The Dockerfile read as data (the build itself is replayed by dockerfile-replay.ts in .ci/run):
// what Crossplane and the prefetch Job rely on is checked here on every `npm test`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_FETCH_COMMAND } from '../../function/api/input.js';
import { RUN_AS_ID } from '../../function/constants.js';
import { envOf, last, parseDockerfile, type Stage } from './dockerfile.js';
import { ROOT } from './examples.js';

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const runtime = stages.at(-1) as Stage;

describe('Dockerfile', () => {
  it('builds in stages with dev dependencies and ships a distroless Node.js 20 runtime', () => {
    expect(stages.map((s) => s.base)).toEqual([
      'node:20-bookworm-slim',
      'node:20-bookworm-slim',
      'gcr.io/distroless/nodejs20-debian12:nonroot',
    ]);
    const build = stages[0] as Stage;
    expect(build.steps.filter((s) => s.op === 'RUN').map((s) => s.command)).toEqual([
      'npm ci --no-audit --no-fund',
      'npm run build',
    ]);
    expect(runtime.steps.some((s) => s.op === 'RUN')).toBe(false);
  });

  it('runs the Function as uid/gid 2000 on port 9443', () => {
    expect(last(runtime, 'USER')?.user).toBe(`${RUN_AS_ID}:${RUN_AS_ID}`);
    expect(last(runtime, 'EXPOSE')?.ports).toEqual(['9443']);
    expect(last(runtime, 'ENTRYPOINT')?.argv).toEqual([
      '/nodejs/bin/node',
      '/app/dist/function/main.js',
    ]);
    expect(envOf(runtime)).toEqual({ NODE_ENV: 'production' });
  });

  it('puts the fetch program where the prefetch Job runs it from', () => {
    const [node, script] = DEFAULT_FETCH_COMMAND;
    expect(node).toBe(last(runtime, 'ENTRYPOINT')?.argv[0]);
    // The compiled tree is copied to /app/dist/function/, which holds fetch/main.js.
    const copies = runtime.steps.filter((s) => s.op === 'COPY');
    expect(copies).toContainEqual({
      op: 'COPY',
      from: 'build',
      sources: ['/app/dist/function/'],
      dest: 'dist/function/',
    });
    expect(last(runtime, 'WORKDIR')?.path).toBe('/app');
    expect(script).toBe('/app/dist/function/fetch/main.js');
  });

  it('refuses instructions the replay cannot reproduce', () => {
    expect(() => parseDockerfile('FROM a\nADD x y\n')).toThrow(/ADD is not replayed/);
    expect(() => parseDockerfile('FROM a\nCOPY --chown=1:1 x y\n')).toThrow(/--chown/);
    expect(() => parseDockerfile('FROM a\nENTRYPOINT node x\n')).toThrow(
      /exec \(JSON array\) form/,
    );
  });
});
