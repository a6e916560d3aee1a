import {
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
  ANNOTATION_RESOLVED_REVISION,
} from '../../constants.js';
import {
  at,
  conditionsAt,
  holdObserved,
  remoteManifest,
  stringAt,
  type Json,
} from '../../k8s/object.js';
import { PROVIDER_ERROR_MAX } from '../../constants.js';

/** The fetch program's own failure line is at most 2,048 characters; status quotes as much. */
const FETCH_ERROR_MAX = 2048;
import type { Progress } from '../model.js';

/**
 * Text from a workload cluster (a fetch error annotation, a provider's error) as a status
 * message may quote it: one line, no control characters, bounded. The fetch program already
 * redacts what it writes; this keeps anything else that lands there from breaking a message.
 */
export function oneLine(text: string, max = PROVIDER_ERROR_MAX): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** What a prefetch Job's observed Object says about the staging. */
export type JobState =
  | { state: 'absent' }
  | { state: 'waiting' }
  | { state: 'running'; progress: Progress | undefined }
  | { state: 'complete'; resolvedRevision: string | undefined }
  | { state: 'failed'; message: string };

function count(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,16}$/.test(value)) return undefined;
  return Number(value);
}

export function observeJob(observedObject: Json | undefined): JobState {
  if (observedObject === undefined) return { state: 'absent' };
  const job = remoteManifest(observedObject);
  if (job === undefined) return { state: 'waiting' };
  const conditions = conditionsAt(job, 'status', 'conditions');
  const isTrue = (type: string): boolean =>
    conditions.some((c) => c.type === type && c.status === 'True');
  const annotation = (key: string): string | undefined =>
    stringAt(job, 'metadata', 'annotations', key);
  if (isTrue('Complete')) {
    return { state: 'complete', resolvedRevision: annotation(ANNOTATION_RESOLVED_REVISION) };
  }
  if (isTrue('Failed')) {
    const cond = conditions.find((c) => c.type === 'Failed');
    return {
      state: 'failed',
      message: oneLine(
        annotation(ANNOTATION_FETCH_ERROR) ?? cond?.message ?? cond?.reason ?? 'Job failed',
        FETCH_ERROR_MAX,
      ),
    };
  }
  // A Job counts Pending pods as active (an unbound claim, a missing Secret or ConfigMap), so
  // `active` alone does not mean bytes move. `ready` counts running pods (Kubernetes >= 1.24);
  // without it (older clusters) active is all there is. A progress report settles it.
  const ready = at(job, 'status', 'ready');
  const active = at(job, 'status', 'active');
  const reported = annotation(ANNOTATION_BYTES_DONE) !== undefined;
  const running =
    typeof ready === 'number' ? ready >= 1 : typeof active === 'number' && active >= 1;
  if (!running && !reported) return { state: 'waiting' };
  const done = count(annotation(ANNOTATION_BYTES_DONE));
  const total = count(annotation(ANNOTATION_BYTES_TOTAL));
  return {
    state: 'running',
    progress:
      done !== undefined && total !== undefined
        ? { bytesDone: done, bytesTotal: total }
        : undefined,
  };
}

/** The phase of an observed claim (Pending, Bound, Lost), if provider-kubernetes has seen it. */
export function claimPhase(observedObject: Json | undefined): string | undefined {
  return stringAt(remoteManifest(observedObject), 'status', 'phase');
}

/** Echo the observed Objects of the given roles, so a missing input never deletes them. */
export function holdRoles(observed: Record<string, Json>, roles: string[]): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const role of roles) {
    const held = holdObserved(observed[role]);
    if (held) out[role] = held;
  }
  return out;
}
