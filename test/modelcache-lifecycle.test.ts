import { describe, expect, it } from 'vitest';
import * as f from './support/fixtures.js';
import { World, rolesOf, type Round } from './support/world.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const GiB = 2 ** 30;

interface Row {
  step: string;
  cluster: string;
  phase: string;
  reason: string;
  roles: string[];
}

function rows(step: string, round: Round): Row[] {
  const clusters = (round.cache.status['clusters'] ?? []) as {
    name: string;
    phase: string;
    reason: string;
  }[];
  return clusters.map((c) => ({
    step,
    cluster: c.name,
    phase: c.phase,
    reason: c.reason,
    roles: rolesOf(round.replicas[c.name]),
  }));
}

const ALL = [
  'credentials',
  'fetch',
  'namespace',
  'pvc',
  'reporter-role',
  'reporter-rolebinding',
  'reporter-serviceaccount',
];
const KEPT = ['namespace', 'pvc'];

describe('ModelCache lifecycle on three clusters, through their replicas', () => {
  it('walks creation to Ready, a failure, and a refetch recovery, printing every transition', () => {
    const w = new World(
      f.HF_WEIGHTS,
      ['a', 'b', 'c'].map((n) => f.inferenceClusterXR(n, NFS)),
    );
    const table: Row[] = [];
    const ready: Record<string, boolean | undefined> = {};
    const step = (name: string, before: () => void): void => {
      before();
      const round = w.reconcile();
      table.push(...rows(name, round));
      ready[name] = round.cache.ready;
      for (const e of round.cache.events) console.log(`[${name}] ${e.severity} ${e.message}`);
    };

    w.resolved = false;
    step('1 requirements pending', () => undefined);
    w.resolved = true;
    step('2 created', () => undefined);
    step('2b namespaces exist', () => undefined);
    step('3 a bound', () => {
      w.set('a', { claim: 'Bound', job: { state: 'created' } });
      w.set('b', { claim: 'Pending' });
      w.set('c', { claim: 'Pending' });
    });
    step('4 downloading', () => {
      w.set('a', { job: { state: 'running', done: 1 * GiB, total: 4 * GiB } });
      w.set('b', { claim: 'Bound', job: { state: 'running' } });
      w.set('c', { claim: 'Bound', job: { state: 'running', done: 0, total: 4 * GiB } });
    });
    step('5 a staged, c fails', () => {
      w.set('a', { job: { state: 'complete', revision: '0e9e39f2' } });
      w.set('b', { job: { state: 'running', done: 3 * GiB, total: 4 * GiB } });
      w.set('c', {
        job: {
          state: 'failed',
          error: 'model-00002.safetensors: connection reset after 5 retries',
        },
      });
    });
    step('6 latched', () => {
      w.set('b', { job: { state: 'complete', revision: '0e9e39f2' } });
    });
    step('7 jobs cleaned up', () => {
      w.set('a', { job: undefined });
      w.set('b', { job: undefined });
      w.set('c', { job: undefined });
    });
    step('8 refetch', () => {
      w.annotations = { 'modelplane.ai/refetch': '2026-11-27' };
    });
    step('9 re-staging', () => {
      for (const n of ['a', 'b', 'c'])
        w.set(n, { job: { state: 'running', done: 2 * GiB, total: 4 * GiB } });
    });
    step('10 staged', () => {
      for (const n of ['a', 'b', 'c'])
        w.set(n, { job: { state: 'complete', revision: '0e9e39f2' } });
    });
    step('11 cleaned up', () => {
      for (const n of ['a', 'b', 'c']) w.set(n, { job: undefined });
    });

    console.log(
      table
        .map(
          (r) =>
            `${r.step.padEnd(22)} ${r.cluster}  ${`${r.phase}/${r.reason}`.padEnd(26)} ${r.roles.join(',')}`,
        )
        .join('\n'),
    );

    const r = (
      step: string,
      cluster: string,
      phase: string,
      reason: string,
      roles: string[],
    ): Row => ({ step, cluster, phase, reason, roles });
    expect(table).toEqual([
      // The namespace first; everything else once it exists.
      r('2 created', 'a', 'Pending', 'NamespacePending', ['namespace']),
      r('2 created', 'b', 'Pending', 'NamespacePending', ['namespace']),
      r('2 created', 'c', 'Pending', 'NamespacePending', ['namespace']),
      r('2b namespaces exist', 'a', 'Pending', 'PVCPending', ALL),
      r('2b namespaces exist', 'b', 'Pending', 'PVCPending', ALL),
      r('2b namespaces exist', 'c', 'Pending', 'PVCPending', ALL),
      r('3 a bound', 'a', 'Pending', 'JobPending', ALL),
      r('3 a bound', 'b', 'Pending', 'PVCPending', ALL),
      r('3 a bound', 'c', 'Pending', 'PVCPending', ALL),
      r('4 downloading', 'a', 'Hydrating', 'Downloading', ALL),
      r('4 downloading', 'b', 'Hydrating', 'Downloading', ALL),
      r('4 downloading', 'c', 'Hydrating', 'Downloading', ALL),
      r('5 a staged, c fails', 'a', 'Ready', 'Staged', ALL),
      r('5 a staged, c fails', 'b', 'Hydrating', 'Downloading', ALL),
      r('5 a staged, c fails', 'c', 'Failed', 'FetchFailed', ALL),
      // Latched: a's Job and Secret go; c's failed Job stays for its logs, its Secret goes.
      r('6 latched', 'a', 'Ready', 'Staged', KEPT),
      r('6 latched', 'b', 'Ready', 'Staged', ALL),
      r('6 latched', 'c', 'Failed', 'FetchFailed', ['fetch', 'namespace', 'pvc']),
      // Cleaned-up Jobs neither un-ready a cluster nor start a second download.
      r('7 jobs cleaned up', 'a', 'Ready', 'Staged', KEPT),
      r('7 jobs cleaned up', 'b', 'Ready', 'Staged', KEPT),
      r('7 jobs cleaned up', 'c', 'Failed', 'FetchFailed', KEPT),
      // A new refetch token is a new identity: every cluster re-stages with a new Job.
      r('8 refetch', 'a', 'Pending', 'JobPending', ALL),
      r('8 refetch', 'b', 'Pending', 'JobPending', ALL),
      r('8 refetch', 'c', 'Pending', 'JobPending', ALL),
      r('9 re-staging', 'a', 'Hydrating', 'Downloading', ALL),
      r('9 re-staging', 'b', 'Hydrating', 'Downloading', ALL),
      r('9 re-staging', 'c', 'Hydrating', 'Downloading', ALL),
      r('10 staged', 'a', 'Ready', 'Staged', ALL),
      r('10 staged', 'b', 'Ready', 'Staged', ALL),
      r('10 staged', 'c', 'Ready', 'Staged', ALL),
      r('11 cleaned up', 'a', 'Ready', 'Staged', KEPT),
      r('11 cleaned up', 'b', 'Ready', 'Staged', KEPT),
      r('11 cleaned up', 'c', 'Ready', 'Staged', KEPT),
    ]);
    expect(ready).toEqual({
      '1 requirements pending': false,
      '2 created': false,
      '2b namespaces exist': false,
      '3 a bound': false,
      '4 downloading': false,
      '5 a staged, c fails': false,
      '6 latched': false,
      '7 jobs cleaned up': false,
      '8 refetch': false,
      '9 re-staging': false,
      '10 staged': true,
      '11 cleaned up': true,
    });
    expect(w.status?.['summary']).toEqual({
      ready: '3/3',
      readyClusters: 3,
      matchedClusters: 3,
      failedClusters: 0,
    });
  });
});
