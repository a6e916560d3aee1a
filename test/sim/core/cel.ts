// provider-kubernetes' DeriveFromCelQuery readiness, evaluated with a real CEL library
// (@marcbachmann/cel-js) the way checkDeriveFromCelQuery does it
// (crossplane-contrib/provider-kubernetes v1.2.1, internal/controller/namespaced/object/object.go):
// one variable `object` of type dyn holding the observed remote object as JSON, the query must
// type-check to bool, and ready is exactly `val == true`. Errors become the Unavailable
// condition's message, prefixed as the provider prefixes them.
import { Environment } from '@marcbachmann/cel-js';

const env = new Environment().registerVariable('object', 'dyn');

export type CelVerdict = { ready: boolean } | { error: string };

const checked = new Map<string, string | undefined>();

export function celReadiness(query: string, object: unknown): CelVerdict {
  if (query === '') return { error: 'cel query cannot be empty' };
  let problem = checked.get(query);
  if (!checked.has(query)) {
    const result = env.check(query);
    problem = !result.valid
      ? `failed to compile query: ${result.error?.message.split('\n')[0] ?? 'invalid'}`
      : result.type !== 'bool'
        ? 'celQuery does not return a bool type'
        : undefined;
    checked.set(query, problem);
  }
  if (problem !== undefined) return { error: problem };
  try {
    // JSON round trip, as the provider marshals and unmarshals the object before evaluating.
    const value: unknown = env.evaluate(query, {
      object: JSON.parse(JSON.stringify(object)) as unknown,
    });
    return { ready: value === true };
  } catch (err) {
    const msg = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
    return { error: `failed to eval the program: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}` };
  }
}
