// RunFunctionRequests shaped as Crossplane sends them, built from core-level fixtures.
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import type { CoreRequest } from '../../function/core.js';

export function toRunFunctionRequest(
  core: CoreRequest,
  tag = 'test-tag',
  resolved = true,
): RunFunctionRequest {
  const observed: Record<string, { resource: Record<string, unknown> }> = {};
  for (const [key, body] of Object.entries(core.observed)) observed[key] = { resource: body };
  const required: Record<string, { items: { resource: Record<string, unknown> }[] }> = {};
  if (resolved) {
    for (const [key, list] of Object.entries(core.required)) {
      if (list) required[key] = { items: list.map((resource) => ({ resource })) };
    }
  }
  return RunFunctionRequest.fromPartial({
    meta: { tag },
    observed: { composite: { resource: core.composite }, resources: observed },
    requiredResources: required,
    ...(core.input !== undefined ? { input: core.input as Record<string, unknown> } : {}),
  });
}
