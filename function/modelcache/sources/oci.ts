import { DEFAULT_OCI_IMAGE_DIRECTORY } from '../../api/modelcache.js';
import { ENV_OCI_DOCKER_CONFIG, OCI_DOCKER_CONFIG_KEY } from '../../constants.js';
import { tokenCredentials } from './token.js';
import type { OciSpec, SourceContext, SourceParts } from './types.js';

/**
 * An OCI artifact or modelcar image. The docker config of a kubernetes.io/dockerconfigjson
 * Secret is copied key for key, like a token, and reaches the Job as one env var; the fetch
 * program reads the registry's entry from it.
 */
export function ociParts(spec: OciSpec, ctx: SourceContext): SourceParts {
  // The directory only means something for the image layout; an auto-detected layout keeps
  // it so that the fetch program can use it when the manifest turns out to be an image.
  const directory =
    spec.layout === 'artifact' ? undefined : (spec.directory ?? DEFAULT_OCI_IMAGE_DIRECTORY);
  const identity = {
    ref: spec.ref,
    layout: spec.layout,
    directory,
    include: spec.include,
    exclude: spec.exclude,
    plainHTTP: spec.plainHTTP,
  };
  return {
    identity,
    summary: `oci://${spec.ref}`,
    plan: {
      type: 'oci',
      ref: spec.ref,
      ...(spec.layout !== undefined ? { layout: spec.layout } : {}),
      ...(directory !== undefined ? { directory } : {}),
      ...(spec.include !== undefined ? { include: spec.include } : {}),
      ...(spec.exclude !== undefined ? { exclude: spec.exclude } : {}),
      ...(spec.plainHTTP === true ? { plainHTTP: true } : {}),
      ...(spec.secretRef ? { dockerConfigEnv: ENV_OCI_DOCKER_CONFIG } : {}),
    },
    credentials: tokenCredentials(
      spec.secretRef && { name: spec.secretRef.name, key: OCI_DOCKER_CONFIG_KEY },
      ENV_OCI_DOCKER_CONFIG,
      ctx,
    ),
    files: undefined,
  };
}
