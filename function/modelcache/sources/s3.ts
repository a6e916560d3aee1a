import { AWS_SECRET_KEYS } from '../../constants.js';
import type { S3Spec, SourceContext, SourceParts } from './types.js';

/** Split s3://bucket/prefix into its parts; the API pattern guarantees the shape. */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return slash < 0
    ? { bucket: rest, prefix: '' }
    : { bucket: rest.slice(0, slash), prefix: rest.slice(slash + 1) };
}

export function s3Parts(spec: S3Spec, ctx: SourceContext): SourceParts {
  const { bucket, prefix } = parseS3Uri(spec.uri);
  return {
    identity: { uri: spec.uri, region: spec.region, endpoint: spec.endpoint },
    summary: spec.uri,
    plan: {
      type: 's3',
      bucket,
      prefix,
      ...(spec.region !== undefined ? { region: spec.region } : {}),
      ...(spec.endpoint !== undefined ? { endpoint: spec.endpoint } : {}),
      credentialsFromEnv: spec.secretRef !== undefined,
    },
    // The whole data map is copied: AWS_SESSION_TOKEN is optional and a patch from a
    // missing field would block the copy. The Secret should hold only these keys.
    credentials: spec.secretRef && {
      secretName: spec.secretRef.name,
      copies: [{ fieldPath: 'data', toFieldPath: 'data' }],
      env: AWS_SECRET_KEYS.map((key) => ({
        name: key,
        valueFrom: {
          secretKeyRef: {
            name: ctx.remoteSecretName,
            key,
            ...(key === 'AWS_SESSION_TOKEN' ? { optional: true } : {}),
          },
        },
      })),
    },
    files: undefined,
  };
}
