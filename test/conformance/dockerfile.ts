// The Dockerfile, read as data: a parser for the instructions it uses and a replay of its build
// steps on the local filesystem, for CI machines without an image builder. The Dockerfile stays
// the single source of the steps: nothing here repeats them.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, posix } from 'node:path';

export type Instruction =
  | { op: 'WORKDIR'; path: string }
  | { op: 'COPY'; from: string | undefined; sources: string[]; dest: string }
  | { op: 'RUN'; command: string }
  | { op: 'ENV'; vars: Record<string, string> }
  | { op: 'USER'; user: string }
  | { op: 'EXPOSE'; ports: string[] }
  | { op: 'ENTRYPOINT'; argv: string[] }
  | { op: 'CMD'; argv: string[] };

export interface Stage {
  /** The stage's name (AS ...) or its index. */
  name: string;
  base: string;
  steps: Instruction[];
}

const SUPPORTED = new Set([
  'FROM',
  'WORKDIR',
  'COPY',
  'RUN',
  'ENV',
  'USER',
  'EXPOSE',
  'ENTRYPOINT',
  'CMD',
  'ARG',
]);

/** Logical lines: comments dropped, backslash continuations joined. */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (cur === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      cur += `${line.slice(0, -1)} `;
      continue;
    }
    out.push((cur + line).trim());
    cur = '';
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

function exec(form: string, where: string): string[] {
  if (!form.startsWith('[')) throw new Error(`${where}: use the exec (JSON array) form`);
  const argv: unknown = JSON.parse(form);
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
    throw new Error(`${where}: not a JSON array of strings`);
  }
  return argv;
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const args: Record<string, string> = {};
  const subst = (s: string): string =>
    s.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (m, a?: string, b?: string) => {
        const v = args[a ?? b ?? ''];
        return v ?? m;
      },
    );
  for (const line of logicalLines(text)) {
    const m = /^(\S+)\s*(.*)$/.exec(line);
    const op = (m?.[1] ?? '').toUpperCase();
    const rest = m?.[2] ?? '';
    if (!SUPPORTED.has(op))
      throw new Error(`Dockerfile: ${op} is not replayed; keep to ${[...SUPPORTED].join(', ')}`);
    if (op === 'ARG') {
      const [k, v] = rest.split('=', 2);
      if (k !== undefined) args[k.trim()] = (v ?? '').trim();
      continue;
    }
    if (op === 'FROM') {
      const parts = subst(rest).split(/\s+/);
      const base = parts[0] ?? '';
      const name = parts[1]?.toUpperCase() === 'AS' ? (parts[2] ?? '') : String(stages.length);
      stages.push({ name, base, steps: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${op} before FROM`);
    const value = subst(rest);
    switch (op) {
      case 'WORKDIR':
        stage.steps.push({ op, path: value });
        break;
      case 'COPY': {
        const words = value.split(/\s+/);
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift() as string;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
          else throw new Error(`Dockerfile: COPY ${flag} is not replayed`);
        }
        const dest = words.pop();
        if (dest === undefined || words.length === 0) throw new Error(`Dockerfile: COPY ${value}`);
        stage.steps.push({ op, from, sources: words, dest });
        break;
      }
      case 'RUN':
        if (value.startsWith('[')) throw new Error('Dockerfile: RUN in exec form is not replayed');
        stage.steps.push({ op, command: value });
        break;
      case 'ENV': {
        const vars: Record<string, string> = {};
        for (const kv of value.split(/\s+/)) {
          const [k, v] = kv.split('=', 2);
          if (k === undefined || v === undefined)
            throw new Error(`Dockerfile: ENV ${kv}: use KEY=VALUE`);
          vars[k] = v;
        }
        stage.steps.push({ op, vars });
        break;
      }
      case 'USER':
        stage.steps.push({ op, user: value });
        break;
      case 'EXPOSE':
        stage.steps.push({ op, ports: value.split(/\s+/) });
        break;
      case 'ENTRYPOINT':
      case 'CMD':
        stage.steps.push({ op, argv: exec(value, op) });
        break;
    }
  }
  return stages;
}

/** The last value an instruction of this kind set in a stage. */
export function last<K extends Instruction['op']>(
  stage: Stage,
  op: K,
): Extract<Instruction, { op: K }> | undefined {
  return stage.steps.filter((s): s is Extract<Instruction, { op: K }> => s.op === op).at(-1);
}

export function envOf(stage: Stage): Record<string, string> {
  return Object.assign(
    {},
    ...stage.steps.flatMap((s) => (s.op === 'ENV' ? [s.vars] : [])),
  ) as Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Replay.

export interface Replayed {
  /** Each stage's root filesystem (only what the Dockerfile put there), by stage name. */
  roots: Record<string, string>;
  stages: Stage[];
}

/**
 * A clean copy of the repository at `root`: what a fresh clone of the working tree holds
 * (tracked files and untracked files git does not ignore), without node_modules, dist or .cache.
 */
export function cleanCopy(root: string, dest: string): void {
  const files = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  )
    .split('\0')
    .filter((f) => f !== '' && existsSync(join(root, f)));
  for (const f of files) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    cpSync(join(root, f), join(dest, f));
  }
}

function within(root: string, workdir: string, path: string): string {
  const abs = isAbsolute(path) ? path : posix.join(workdir, path);
  return join(root, posix.normalize(abs));
}

/** COPY with Docker's rules: a directory's contents go into dest; files into dest/ or as dest. */
function copy(src: string, dest: string, destIsDir: boolean): void {
  if (!existsSync(src)) throw new Error(`COPY: ${src} does not exist`);
  if (statSync(src).isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const entry of readdirSync(src))
      cpSync(join(src, entry), join(dest, entry), { recursive: true });
    return;
  }
  const target = destIsDir ? join(dest, src.split('/').at(-1) ?? '') : dest;
  mkdirSync(dirname(target), { recursive: true });
  cpSync(src, target);
}

/**
 * Runs every stage's WORKDIR/COPY/ENV/RUN in order, each stage in its own folder under `work`,
 * with the context a clean copy of the repository. RUN uses this machine's tools (sh, node, npm)
 * in place of the base image's; `log` receives each step.
 */
export function replay(
  dockerfile: string,
  context: string,
  work: string,
  log: (line: string) => void,
): Replayed {
  const stages = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  const roots: Record<string, string> = {};
  for (const [i, stage] of stages.entries()) {
    const root = join(work, `stage-${i}-${stage.name}`);
    mkdirSync(root, { recursive: true });
    roots[stage.name] = root;
    let workdir = '/';
    const env: Record<string, string> = {};
    log(`FROM ${stage.base} AS ${stage.name}  (root ${root})`);
    for (const step of stage.steps) {
      switch (step.op) {
        case 'WORKDIR':
          workdir = posix.isAbsolute(step.path) ? step.path : posix.join(workdir, step.path);
          mkdirSync(within(root, '/', workdir), { recursive: true });
          log(`WORKDIR ${workdir}`);
          break;
        case 'ENV':
          Object.assign(env, step.vars);
          break;
        case 'COPY': {
          const fromRoot = step.from === undefined ? context : roots[step.from];
          if (fromRoot === undefined)
            throw new Error(`COPY --from=${step.from ?? ''}: no such stage`);
          const destIsDir = step.dest.endsWith('/') || step.sources.length > 1;
          const dest = within(root, workdir, step.dest);
          for (const s of step.sources) {
            const src = step.from === undefined ? join(context, s) : within(fromRoot, '/', s);
            copy(src, dest, destIsDir);
          }
          log(
            `COPY ${step.from ? `--from=${step.from} ` : ''}${step.sources.join(' ')} ${step.dest}`,
          );
          break;
        }
        case 'RUN': {
          log(`RUN ${step.command}`);
          const r = spawnSync('sh', ['-c', step.command], {
            cwd: within(root, '/', workdir),
            env: { ...process.env, ...env },
            stdio: 'inherit',
          });
          if (r.status !== 0) throw new Error(`RUN ${step.command}: exit ${String(r.status)}`);
          break;
        }
        default:
          break;
      }
    }
  }
  return { roots, stages };
}
