import type { ModelCacheSpec } from '../../api/modelcache.js';
import { configMapParts } from './configmap.js';
import { httpParts } from './http.js';
import { huggingFaceParts } from './huggingface.js';
import { inlineParts } from './inline.js';
import { ociParts } from './oci.js';
import { s3Parts } from './s3.js';
import type { Source, SourceContext, SourceParts } from './types.js';

export type { Source, SourceContext, SourceParts } from './types.js';

/** Tag the one set member; the parsed spec guarantees exactly one is set. */
export function sourceOf(source: ModelCacheSpec['artifact']['source']): Source {
  if (source.huggingFace) return { type: 'huggingFace', spec: source.huggingFace };
  if (source.s3) return { type: 's3', spec: source.s3 };
  if (source.http) return { type: 'http', spec: source.http };
  if (source.oci) return { type: 'oci', spec: source.oci };
  if (source.inline) return { type: 'inline', spec: source.inline };
  if (source.configMap) return { type: 'configMap', spec: source.configMap };
  throw new Error('spec.artifact.source: no member set (the schema should have rejected this)');
}

export function sourceParts(source: Source, ctx: SourceContext): SourceParts {
  switch (source.type) {
    case 'huggingFace':
      return huggingFaceParts(source.spec, ctx);
    case 's3':
      return s3Parts(source.spec, ctx);
    case 'http':
      return httpParts(source.spec, ctx);
    case 'oci':
      return ociParts(source.spec, ctx);
    case 'inline':
      return inlineParts(source.spec, ctx);
    case 'configMap':
      return configMapParts(source.spec, ctx);
    default: {
      const unreachable: never = source;
      return unreachable;
    }
  }
}
