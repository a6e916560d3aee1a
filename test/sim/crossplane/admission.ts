// Control-plane admission for what users apply:
//  - XRs are defaulted and validated against their XRD's schema, CEL rules included
//    (the project's own model of the API server's CRD validation, test/support/cel-admission.ts);
//  - Secrets' stringData becomes base64 data, as the API server does;
//  - deleting a resource a Usage protects is refused, and the attempt recorded for replay
//    (crossplane v2.3.0 internal/webhook/protection/usage/handler.go).
import { admit, applyDefaults, properties, readXrdSchema } from '../../support/cel-admission.js';
import { deepEqual, isObj, str } from '../core/json.js';
import { ApiError, type Store } from '../core/store.js';

export const XRDS: Record<string, string> = {
  ModelCache: 'apis/modelcaches/definition.yaml',
  ModelCacheReplica: 'apis/modelcachereplicas/definition.yaml',
  ModelDeployment: 'apis/modeldeployments/definition.yaml',
  InferenceCluster: 'apis/inferenceclusters/definition.yaml',
};

export const IN_USE_LABEL = 'crossplane.io/in-use';
export const DELETION_ATTEMPT = 'usage.crossplane.io/deletion-attempt-with-policy';
export const USAGE_API_VERSION = 'protection.crossplane.io/v1beta1';

export function controlPlaneAdmission(store: Store): void {
  const specSchemas = new Map<string, Record<string, unknown>>();
  for (const [kind, path] of Object.entries(XRDS)) {
    const spec = properties(readXrdSchema(path))['spec'];
    if (spec) specSchemas.set(kind, spec);
  }
  store.admit((op, o, old) => {
    if (op === 'DELETE') {
      if (o.metadata.labels?.[IN_USE_LABEL] !== 'true') return;
      const usages = store
        .list(USAGE_API_VERSION, 'Usage', { namespace: o.metadata.namespace })
        .filter(
          (u) =>
            str(u, 'spec', 'of', 'kind') === o.kind &&
            str(u, 'spec', 'of', 'resourceRef', 'name') === o.metadata.name,
        );
      if (usages.length === 0) return;
      if (o.metadata.annotations?.[DELETION_ATTEMPT] !== 'Background') {
        const cur = store.get({
          apiVersion: o.apiVersion,
          kind: o.kind,
          name: o.metadata.name,
          namespace: o.metadata.namespace,
        });
        if (cur) {
          cur.metadata.annotations = {
            ...(cur.metadata.annotations ?? {}),
            [DELETION_ATTEMPT]: 'Background',
          };
          store.update(cur, 'crossplane-usage-webhook');
        }
      }
      const first = usages[0];
      const by = str(first, 'spec', 'by', 'kind');
      const byName = str(first, 'spec', 'by', 'resourceRef', 'name');
      throw new ApiError(
        'Conflict',
        `admission webhook "nousages.protection.crossplane.io" denied the request: This resource is in-use by ${usages.length} usage(s), including the *v1beta1.Usage "${first?.metadata.name ?? ''}" (in namespace "${first?.metadata.namespace ?? ''}") by resource ${by ?? ''}/${byName ?? ''}.`,
      );
    }
    if (o.kind === 'Secret' && isObj(o['stringData'])) {
      const data = isObj(o['data']) ? { ...o['data'] } : {};
      for (const [k, v] of Object.entries(o['stringData']))
        data[k] = Buffer.from(String(v)).toString('base64');
      o['data'] = data;
      delete o['stringData'];
    }
    const schema = specSchemas.get(o.kind);
    if (!schema || !o.apiVersion.startsWith('modelplane.ai/')) return;
    if (op === 'UPDATE' && old && deepEqual(o['spec'], old['spec'])) return;
    // Crossplane's generated CRD adds spec.crossplane (compositionRef, resourceRefs, ...)
    // to the XRD's schema; it is validated apart from the user's fields.
    const { crossplane, ...user } = isObj(o['spec']) ? o['spec'] : {};
    const oldUser = isObj(old?.['spec']) ? { ...old['spec'] } : undefined;
    if (oldUser) delete oldUser['crossplane'];
    const spec = applyDefaults(schema, structuredClone(user)) as Record<string, unknown>;
    const errors = admit(schema, 'spec', spec, op === 'UPDATE' ? oldUser : undefined);
    if (errors.length > 0) {
      throw new ApiError(
        'Invalid',
        `${o.kind}.modelplane.ai "${o.metadata.name}" is invalid: ${errors.length === 1 ? (errors[0] ?? '') : `[${errors.join(', ')}]`}`,
      );
    }
    o['spec'] = crossplane === undefined ? spec : { ...spec, crossplane };
  });
}
