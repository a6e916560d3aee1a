import { describe, expect, it } from 'vitest';
import {
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
} from '../../constants.js';
import type { Json } from '../../k8s/object.js';
import { observeJob, type JobState } from './observe.js';

/** An observed Object whose remote Job has the given status and annotations. */
function jobObject(status: Json | undefined, annotations: Record<string, string> = {}): Json {
  return {
    status: {
      atProvider: {
        manifest: { metadata: { name: 'j', annotations }, ...(status ? { status } : {}) },
      },
    },
  };
}

const progress = { [ANNOTATION_BYTES_DONE]: '10', [ANNOTATION_BYTES_TOTAL]: '100' };

describe('observeJob', () => {
  const cases: { reason: string; object: Json | undefined; expected: JobState }[] = [
    { reason: 'no Object yet', object: undefined, expected: { state: 'absent' } },
    { reason: 'Object without a remote Job yet', object: {}, expected: { state: 'waiting' } },
    {
      reason:
        'a Pending pod counts as active but not ready: not downloading (claim unbound, Secret missing)',
      object: jobObject({ active: 1, ready: 0 }),
      expected: { state: 'waiting' },
    },
    {
      reason: 'a running pod',
      object: jobObject({ active: 1, ready: 1 }),
      expected: { state: 'running', progress: undefined },
    },
    {
      reason: 'older clusters report no ready count: active is all there is',
      object: jobObject({ active: 1 }),
      expected: { state: 'running', progress: undefined },
    },
    {
      reason: 'a progress report means bytes moved, whatever the counts',
      object: jobObject({ active: 1, ready: 0 }, progress),
      expected: { state: 'running', progress: { bytesDone: 10, bytesTotal: 100 } },
    },
    {
      reason:
        'a failure line from the cluster is quoted as one bounded line, control characters gone',
      object: jobObject(
        { failed: 4, conditions: [{ type: 'Failed', status: 'True' }] },
        { [ANNOTATION_FETCH_ERROR]: `model.bin: \u001b[31mreset\r\nby peer${'x'.repeat(3000)}` },
      ),
      expected: {
        state: 'failed',
        message: `model.bin:  [31mreset by peer${'x'.repeat(2048 - 'model.bin:  [31mreset by peer'.length)}…`,
      },
    },
    {
      reason: 'Complete wins over everything',
      object: jobObject({ succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] }),
      expected: { state: 'complete', resolvedRevision: undefined },
    },
  ];
  it.each(cases)('$reason', ({ object, expected }) => {
    expect(observeJob(object)).toEqual(expected);
  });
});
