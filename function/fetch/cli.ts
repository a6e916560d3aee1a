// The program around the engine: plan from the env, logs, reporter, exit status and the
// one final line (also the Kubernetes termination message) naming the file and the cause.
import { open } from 'node:fs/promises';

import { pino, type DestinationStream, type Logger } from 'pino';

import { AWS_SECRET_KEYS, ENV_FETCH_PLAN, EXIT_PERMANENT } from '../contract/job.js';
import { FetchError, describe, redact, withoutControlCharacters } from './errors.js';
import { fetchPlan, type FetchPlan } from '../contract/plan.js';
import { podHolderGone } from './pods.js';
import { kubeConnectionFromEnv, reporterFromEnv, type Reporter } from './reporter.js';
import { DEFAULT_RETRY } from './retry.js';
import { DEFAULT_RUN_OPTIONS, runFetch, type RunOptions, type RunResult } from './run.js';

export const LOGGER_NAME = 'modelcache-fetch';
export const TERMINATION_LOG = '/dev/termination-log';
/** The final line is also an annotation and the termination message (4 KiB max): keep it short. */
export const MAX_LINE = 2048;

function oneLine(text: string): string {
  // No control character survives: the line is shown in status, events and terminals.
  const flat = withoutControlCharacters(text.replace(/\s+/g, ' ')).trim();
  return flat.length <= MAX_LINE ? flat : `${flat.slice(0, MAX_LINE - 1)}…`;
}

/** Knobs an operator may set on the Job's env; none is needed. */
export const ENV_TUNING = {
  concurrency: 'MODELCACHE_FETCH_CONCURRENCY',
  stallTimeoutSeconds: 'MODELCACHE_FETCH_STALL_TIMEOUT_SECONDS',
  minBytesPerSecond: 'MODELCACHE_FETCH_MIN_BYTES_PER_SECOND',
  requestTimeoutSeconds: 'MODELCACHE_FETCH_REQUEST_TIMEOUT_SECONDS',
  retryAttempts: 'MODELCACHE_FETCH_RETRY_ATTEMPTS',
  retryBaseMs: 'MODELCACHE_FETCH_RETRY_BASE_MS',
  progressIntervalMs: 'MODELCACHE_FETCH_PROGRESS_INTERVAL_MS',
  debug: 'MODELCACHE_FETCH_DEBUG',
  partMiB: 'MODELCACHE_FETCH_PART_MIB',
  connectionsPerFile: 'MODELCACHE_FETCH_CONNECTIONS_PER_FILE',
  maxConnections: 'MODELCACHE_FETCH_MAX_CONNECTIONS',
  reorderMiB: 'MODELCACHE_FETCH_REORDER_MIB',
} as const;

export function createFetchLogger(debug: boolean, destination?: DestinationStream): Logger {
  return pino(
    {
      level: debug ? 'debug' : 'info',
      base: { name: LOGGER_NAME },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Parse and validate the plan; the error names the env var and the offending field. */
export function parsePlan(raw: string | undefined): FetchPlan {
  if (raw === undefined || raw.trim() === '') {
    throw FetchError.permanent(
      `${ENV_FETCH_PLAN} is not set: the Job passes the fetch plan as JSON in it`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw FetchError.permanent(`${ENV_FETCH_PLAN} is not valid JSON: ${describe(err)}`);
  }
  const parsed = fetchPlan.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`,
    );
    throw FetchError.permanent(
      `${ENV_FETCH_PLAN} is not a valid fetch plan: ${problems.join('; ')}`,
    );
  }
  return parsed.data;
}

function positive(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw FetchError.permanent(`${name} must be a positive number`);
  return n;
}

function mib(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.max(1, Math.floor(n * 1024 * 1024));
}

export function optionsFromEnv(
  env: NodeJS.ProcessEnv,
): Omit<RunOptions, 'env' | 'log' | 'reporter'> {
  const d = DEFAULT_RUN_OPTIONS;
  const stall = positive(env, ENV_TUNING.stallTimeoutSeconds);
  const deadline = positive(env, ENV_TUNING.requestTimeoutSeconds);
  return {
    ...d,
    minBytesPerSecond: positive(env, ENV_TUNING.minBytesPerSecond) ?? d.minBytesPerSecond,
    requestTimeoutMs: deadline !== undefined ? deadline * 1000 : d.requestTimeoutMs,
    concurrency: Math.floor(positive(env, ENV_TUNING.concurrency) ?? d.concurrency),
    ranges: {
      partBytes: mib(positive(env, ENV_TUNING.partMiB)) ?? d.ranges.partBytes,
      connectionsPerFile: Math.floor(
        positive(env, ENV_TUNING.connectionsPerFile) ?? d.ranges.connectionsPerFile,
      ),
      maxConnections: Math.floor(
        positive(env, ENV_TUNING.maxConnections) ?? d.ranges.maxConnections,
      ),
      reorderBytes: mib(positive(env, ENV_TUNING.reorderMiB)) ?? d.ranges.reorderBytes,
    },
    stallTimeoutMs: stall !== undefined ? stall * 1000 : d.stallTimeoutMs,
    progressIntervalMs: positive(env, ENV_TUNING.progressIntervalMs) ?? d.progressIntervalMs,
    retry: {
      ...DEFAULT_RETRY,
      attempts: Math.floor(positive(env, ENV_TUNING.retryAttempts) ?? DEFAULT_RETRY.attempts),
      baseMs: positive(env, ENV_TUNING.retryBaseMs) ?? DEFAULT_RETRY.baseMs,
    },
  };
}

/** Every secret value the plan may make the program read, for redaction of output. */
export function secretsIn(env: NodeJS.ProcessEnv, plan: FetchPlan | undefined): string[] {
  const names: string[] = [...AWS_SECRET_KEYS.filter((k) => k !== 'AWS_ACCESS_KEY_ID')];
  const src = plan?.source;
  if (src !== undefined && 'tokenEnv' in src && src.tokenEnv !== undefined)
    names.push(src.tokenEnv);
  return names.map((n) => env[n]?.trim() ?? '').filter((v) => v.length >= 4);
}

async function writeTerminationLog(path: string, line: string): Promise<void> {
  // Kubernetes creates the file; outside a pod it is absent and nothing is written.
  const fh = await open(path, 'r+').catch(() => undefined);
  if (fh === undefined) return;
  try {
    await fh.truncate(0);
    await fh.write(`${line}\n`, 0);
  } catch {
    // best-effort
  } finally {
    await fh.close();
  }
}

export interface MainDeps {
  env: NodeJS.ProcessEnv;
  log?: Logger;
  reporter?: (plan: FetchPlan, log: Logger) => Reporter;
  terminationLog?: string;
  signal?: AbortSignal;
  /** Overrides of the engine options (tests). */
  options?: Partial<RunOptions>;
}

export interface MainOutcome {
  code: number;
  /** The final line on failure. */
  line?: string;
  result?: RunResult;
}

/** Run the whole program once; never throws. */
export async function main(deps: MainDeps): Promise<MainOutcome> {
  const env = deps.env;
  const log = deps.log ?? createFetchLogger(env[ENV_TUNING.debug] === '1');
  let plan: FetchPlan | undefined;
  let reporter: Reporter | undefined;
  try {
    plan = parsePlan(env[ENV_FETCH_PLAN]);
    const target = plan.report;
    reporter = deps.reporter ? deps.reporter(plan, log) : reporterFromEnv(env, target, log);
    log.info(
      {
        identity: plan.identity,
        source: plan.source.type,
        targetDir: plan.targetDir,
        capacityBytes: plan.capacityBytes,
      },
      'fetch starting',
    );
    const conn = kubeConnectionFromEnv(env);
    const result = await runFetch(plan, {
      ...optionsFromEnv(env),
      ...(conn !== undefined ? { lockHolderGone: podHolderGone({ ...conn, ...target, log }) } : {}),
      ...deps.options,
      env,
      log,
      reporter,
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
    await reporter.flush();
    log.info(
      {
        outcome: result.outcome,
        resolvedRevision: result.manifest.resolvedRevision,
        bytesFetched: result.bytesFetched,
      },
      'fetch succeeded',
    );
    return { code: 0, result };
  } catch (err) {
    const secrets = secretsIn(env, plan);
    const raw =
      err instanceof FetchError ? err.line() : `unexpected error: ${describe(err, secrets)}`;
    const line = oneLine(redact(raw, secrets));
    reporter?.report({ fetchError: line }, true);
    await reporter?.flush();
    await writeTerminationLog(deps.terminationLog ?? TERMINATION_LOG, line);
    const permanent = err instanceof FetchError && err.permanent;
    log.error({ file: err instanceof FetchError ? err.file : undefined, permanent }, line);
    return { code: permanent ? EXIT_PERMANENT : 1, line };
  }
}
