import type { ConfigMapSpec, SourceContext, SourceParts } from './types.js';

/** A control-plane ConfigMap, copied to the workload cluster by provider-kubernetes. */
export function configMapParts(spec: ConfigMapSpec, ctx: SourceContext): SourceParts {
  const items = spec.items?.map((key) => ({ key, path: key }));
  return {
    identity: { name: spec.name, items: spec.items },
    summary: `configmap/${spec.name}`,
    plan: {
      type: 'configMap',
      dir: ctx.filesDir,
      ...(spec.items !== undefined ? { paths: [...spec.items] } : {}),
    },
    credentials: undefined,
    files: { from: 'configMap', name: spec.name, items },
  };
}
