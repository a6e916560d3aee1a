// An OCI registry: placeholder until the registry client lands (issue 16, step 2).
import { FetchError } from '../errors.js';
import type { FetchPlanSource } from '../plan.js';
import type { Source } from './types.js';

type OciPlan = Extract<FetchPlanSource, { type: 'oci' }>;

export function ociSource(plan: OciPlan): Source {
  throw new FetchError(`the OCI source (${plan.ref}) is not implemented in this build yet`);
}
