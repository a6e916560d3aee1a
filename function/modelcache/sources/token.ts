import type { SourceContext, SourceCredentials } from './types.js';

/**
 * A single bearer token read from one key of a control-plane Secret: copied key for key to
 * the workload cluster and exposed to the Job as `envName`.
 */
export function tokenCredentials(
  secretRef: { name: string; key: string } | undefined,
  envName: string,
  ctx: SourceContext,
): SourceCredentials | undefined {
  if (!secretRef) return undefined;
  const field = `data[${secretRef.key}]`;
  return {
    secretName: secretRef.name,
    copies: [{ fieldPath: field, toFieldPath: field }],
    env: [
      {
        name: envName,
        valueFrom: { secretKeyRef: { name: ctx.remoteSecretName, key: secretRef.key } },
      },
    ],
  };
}
