// The Job controller of a simulated workload cluster (kubernetes/kubernetes
// pkg/controller/job/job_controller.go): one pod at a time (completions 1); a failed pod is
// replaced after 10 s * 2^(failures-1), capped at 10 min; the Job fails with
// BackoffLimitExceeded once failures exceed backoffLimit, or with DeadlineExceeded after
// activeDeadlineSeconds; success sets SuccessCriteriaMet then Complete; status.active counts
// pending and running pods. spec.podFailurePolicy is applied to each failed pod, its rules in
// order (pkg/controller/job/pod_failure_policy.go): FailJob on a container's exit code fails
// the Job at once (reason PodFailurePolicy), Ignore on a pod condition does not count the pod.
import { MINUTE, SECOND } from '../core/clock.js';
import {
  clone,
  conditions,
  deepEqual,
  isObj,
  num,
  obj,
  setCondition,
  str,
  type Condition,
  type Json,
} from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import { refOf, type KObject } from '../core/store.js';
import { ownerUid, refFromKey, type ClusterParts } from './objects.js';

const JOB_BACKOFF_BASE = 10 * SECOND;
const JOB_BACKOFF_MAX = 10 * MINUTE;

export class JobController {
  readonly queue: Controller;

  constructor(private readonly cluster: ClusterParts) {
    this.queue = new Controller(cluster.clock, `${cluster.name}/job-controller`, (k) =>
      this.syncJob(k),
    );
  }

  private async syncJob(key: string): Promise<Result> {
    await Promise.resolve();
    const ref = refFromKey(key, 'batch/v1');
    const job = this.cluster.store.get(ref);
    if (!job || job.metadata.deletionTimestamp !== undefined) return {};
    const conds = conditions(job, 'status', 'conditions');
    if (conds.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True'))
      return {};
    const pods = this.cluster.store
      .list('v1', 'Pod', { namespace: job.metadata.namespace })
      .filter((p) => ownerUid(p, 'Job') === job.metadata.uid);
    const status = isObj(job['status']) ? { ...job['status'] } : {};
    let succeeded = num(status, 'succeeded') ?? 0;
    let failed = num(status, 'failed') ?? 0;
    let lastFailure = str(status, 'sim', 'lastFailure');
    let failJob: string | undefined;
    // Count terminated pods once (the real controller tracks them with a finalizer).
    for (const p of pods) {
      const phase = str(p, 'status', 'phase');
      if (
        (phase !== 'Succeeded' && phase !== 'Failed') ||
        p.metadata.annotations?.['sim/counted'] === 'true'
      )
        continue;
      if (phase === 'Succeeded') succeeded++;
      else {
        const verdict = podFailurePolicy(job, p);
        if (verdict?.action === 'FailJob') failJob ??= verdict.message;
        if (verdict?.action !== 'Ignore') failed++;
        lastFailure = String(this.cluster.clock.now());
      }
      p.metadata.annotations = { ...(p.metadata.annotations ?? {}), 'sim/counted': 'true' };
      this.cluster.store.update(p, 'job-controller');
    }
    const active = pods.filter((p) => {
      const phase = str(p, 'status', 'phase');
      return (
        phase !== 'Succeeded' && phase !== 'Failed' && p.metadata.deletionTimestamp === undefined
      );
    });
    const now = this.cluster.clock.iso();
    let list: Condition[] = conds;
    const finish = (type: 'Complete' | 'Failed', reason: string, message: string): void => {
      const pre = type === 'Complete' ? 'SuccessCriteriaMet' : 'FailureTarget';
      list = setCondition(list, { type: pre, status: 'True', reason, message }, now);
      list = setCondition(list, { type, status: 'True', reason, message }, now);
      for (const p of active) this.cluster.store.delete(refOf(p));
    };
    const deadline = num(job, 'spec', 'activeDeadlineSeconds');
    const startTime = str(status, 'startTime');
    let result: Result = {};
    if (succeeded >= 1) {
      finish('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
      status['completionTime'] = now;
    } else if (failJob !== undefined) {
      finish('Failed', 'PodFailurePolicy', failJob);
      this.cluster.record(job, 'Warning', 'PodFailurePolicy', failJob);
    } else if (
      deadline !== undefined &&
      startTime !== undefined &&
      Date.parse(now) - Date.parse(startTime) >= deadline * 1000
    ) {
      finish('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
    } else if (failed > (num(job, 'spec', 'backoffLimit') ?? 6)) {
      finish('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
      this.cluster.record(
        job,
        'Warning',
        'BackoffLimitExceeded',
        'Job has reached the specified backoff limit',
      );
    } else if (active.length === 0) {
      const since =
        lastFailure === undefined ? Infinity : this.cluster.clock.now() - Number(lastFailure);
      const wait =
        failed === 0 ? 0 : Math.min(JOB_BACKOFF_MAX, JOB_BACKOFF_BASE * 2 ** (failed - 1)) - since;
      if (wait > 0) result = { requeueAfter: wait };
      else {
        try {
          const pod = this.createJobPod(job);
          active.push(pod);
          status['startTime'] ??= now;
          this.cluster.record(
            job,
            'Normal',
            'SuccessfulCreate',
            `Created pod: ${pod.metadata.name}`,
          );
        } catch (err) {
          this.cluster.record(
            job,
            'Warning',
            'FailedCreate',
            `Error creating: ${err instanceof Error ? err.message : String(err)}`,
          );
          result = { requeue: true };
        }
      }
    }
    if (deadline !== undefined && startTime !== undefined && result.requeueAfter === undefined) {
      const left = Date.parse(startTime) + deadline * 1000 - Date.parse(now);
      if (left > 0) result = { ...result, requeueAfter: left };
    }
    const next: Json = {
      ...status,
      active: active.length,
      ready: active.filter((p) => str(p, 'status', 'phase') === 'Running').length,
      succeeded,
      failed,
      ...(lastFailure !== undefined ? { sim: { lastFailure } } : {}),
      ...(list.length > 0 ? { conditions: list } : {}),
    };
    if (next['active'] === 0) delete next['active'];
    if (!deepEqual(next, job['status'])) {
      const latest = this.cluster.store.get(ref);
      if (latest) {
        latest['status'] = next;
        this.cluster.store.updateStatus(latest, 'job-controller');
      }
    }
    return result;
  }

  private createJobPod(job: KObject): KObject {
    const template = obj(job, 'spec', 'template') ?? {};
    const labels = {
      ...((obj(template, 'metadata', 'labels') as Record<string, string> | undefined) ?? {}),
      'batch.kubernetes.io/job-name': job.metadata.name,
      'job-name': job.metadata.name,
    };
    const pod = this.cluster.store.create(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          generateName: `${job.metadata.name}-`,
          namespace: job.metadata.namespace,
          labels,
          ownerReferences: [
            {
              apiVersion: 'batch/v1',
              kind: 'Job',
              name: job.metadata.name,
              uid: job.metadata.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: clone(obj(template, 'spec') ?? {}),
      },
      'job-controller',
    );
    return pod;
  }
}

type Verdict = { action: 'FailJob' | 'Ignore' | 'Count'; message: string };

/** The first podFailurePolicy rule a failed pod matches, as the real controller reads it. */
function podFailurePolicy(job: KObject, pod: KObject): Verdict | undefined {
  const rules = obj(job, 'spec', 'podFailurePolicy')?.['rules'];
  if (!Array.isArray(rules)) return undefined;
  const statuses = (obj(pod, 'status')?.['containerStatuses'] ?? []) as Json[];
  const podConditions = conditions(pod, 'status', 'conditions');
  for (const [index, rule] of (rules as Json[]).entries()) {
    const action = str(rule, 'action') as Verdict['action'];
    const codes = obj(rule, 'onExitCodes');
    if (codes !== undefined) {
      const values = (codes['values'] ?? []) as number[];
      const wanted = str(codes, 'containerName');
      const inList = str(codes, 'operator') === 'In';
      for (const c of statuses) {
        if (wanted !== undefined && str(c, 'name') !== wanted) continue;
        const code = num(c, 'state', 'terminated', 'exitCode');
        if (code === undefined || code === 0) continue;
        if (values.includes(code) === inList) {
          return {
            action,
            message: `Container ${str(c, 'name') ?? ''} for pod ${pod.metadata.namespace ?? ''}/${pod.metadata.name} failed with exit code ${code} matching ${action} rule at index ${index}`,
          };
        }
      }
    }
    const onConditions = rule['onPodConditions'];
    if (Array.isArray(onConditions)) {
      for (const want of onConditions as Json[]) {
        const type = str(want, 'type');
        const status = str(want, 'status') ?? 'True';
        if (podConditions.some((c) => c.type === type && c.status === status)) {
          return {
            action,
            message: `Pod ${pod.metadata.namespace ?? ''}/${pod.metadata.name} has condition ${type ?? ''} matching ${action} rule at index ${index}`,
          };
        }
      }
    }
  }
  return undefined;
}
