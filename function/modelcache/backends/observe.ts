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
import type { Progress } from '../model.js';

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
      message: annotation(ANNOTATION_FETCH_ERROR) ?? cond?.message ?? cond?.reason ?? 'Job failed',
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
