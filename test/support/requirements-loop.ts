// Crossplane's required-resources loop around one Function call (FetchingFunctionRunner.RunFunction,
// internal/xfn/required_resources.go, v2.3.x), written once for both stand-ins that call the
// Function the way Crossplane does: the in-process render (test/render/engine.ts) and the fleet
// simulation's composite controller (test/sim/crossplane/composite.ts). Each supplies how a call
// is made and how one selector is fetched; the loop's rules live here only:
//
// - call, and stop at a fatal result or once the requirements equal the previous call's (proto
//   equality; none before the first call, so a Function that requires nothing is called once);
// - otherwise fetch every selector afresh, the resources the request started with kept, and call
//   again with the response's context; the deprecated extraResources answered in their own field;
// - after MaxRequirementsIterations + 1 calls, fail with Crossplane's own message.
import {
  Severity,
  type ResourceSelector,
  type Resources,
  type RunFunctionRequest,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';

export const MAX_REQUIREMENTS_ITERATIONS = 5;

/** JSON with object keys sorted and undefined members dropped: equal values, equal strings. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export interface FunctionCaller {
  /** One call of the Function. */
  call(req: RunFunctionRequest): Promise<RunFunctionResponse>;
  /** ExistingRequiredResourcesFetcher.Fetch for the requirement `name`. */
  fetch(name: string, selector: ResourceSelector): Resources;
}

export async function runWithRequirements(
  first: RunFunctionRequest,
  via: FunctionCaller,
): Promise<RunFunctionResponse> {
  const bootstrap = { ...first.requiredResources };
  let req = first;
  let previous: string | undefined;
  for (let i = 0; i <= MAX_REQUIREMENTS_ITERATIONS; i++) {
    const rsp = await via.call(req);
    if (rsp.results.some((r) => r.severity === Severity.SEVERITY_FATAL)) return rsp;
    const requirements = rsp.requirements === undefined ? undefined : canonical(rsp.requirements);
    if (requirements === previous) return rsp;
    previous = requirements;
    const requiredResources: Record<string, Resources> = { ...bootstrap };
    const extraResources: Record<string, Resources> = {};
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- Crossplane still answers it
    for (const [name, selector] of Object.entries(rsp.requirements?.extraResources ?? {})) {
      extraResources[name] = via.fetch(name, selector);
    }
    for (const [name, selector] of Object.entries(rsp.requirements?.resources ?? {})) {
      requiredResources[name] = via.fetch(name, selector);
    }
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- written for older Functions
    req = { ...req, requiredResources, extraResources, context: rsp.context };
  }
  throw new Error(
    `requirements didn't stabilize after the maximum number of iterations (${String(MAX_REQUIREMENTS_ITERATIONS)})`,
  );
}
