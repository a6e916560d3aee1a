// The pins (test/e2e/versions.env, and Crossplane core from test/conformance/versions.env) and
// where build.sh caches each binary for them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Binaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  etcd: string;
  crossplane: string;
  crossplaneCrds: string;
  usageWebhook: string;
  providerKubernetes: string;
  providerCrds: string;
  lwsCrd: string;
}

export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

export function readPins(root: string): { pins: Record<string, string>; binaries: Binaries } {
  const pins = {
    ...parseEnv(readFileSync(join(root, 'test/conformance/versions.env'), 'utf8')),
    ...parseEnv(readFileSync(join(root, 'test/e2e/versions.env'), 'utf8')),
  };
  const need = (k: string): string => {
    const v = pins[k];
    if (v === undefined) throw new Error(`versions.env: ${k} is not set`);
    return v;
  };
  const bin = join(root, '.cache/bin');
  const k8s = join(bin, `kubernetes-${need('K8S_VERSION')}`);
  const core = join(bin, `core-${need('CROSSPLANE_CORE_VERSION')}`);
  const pk = join(bin, `provider-kubernetes-${need('PROVIDER_KUBERNETES_VERSION')}`);
  return {
    pins,
    binaries: {
      kubeApiserver: join(k8s, 'kube-apiserver'),
      kubeControllerManager: join(k8s, 'kube-controller-manager'),
      kubectl: join(k8s, 'kubectl'),
      etcd: join(bin, `etcd-${need('ETCD_VERSION')}`, 'etcd'),
      crossplane: join(core, 'crossplane'),
      crossplaneCrds: join(core, 'crds'),
      usageWebhook: join(`${core}-webhooks`, 'usage.yaml'),
      providerKubernetes: join(pk, 'provider-kubernetes'),
      providerCrds: join(pk, 'crds'),
      lwsCrd: join(bin, `lws-${need('LWS_VERSION')}`, 'leaderworkersets.yaml'),
    },
  };
}
