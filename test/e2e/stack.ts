// The real control plane, booted on loopback inside the harness's private network namespace:
// one etcd; a control-plane kube-apiserver and one kube-apiserver per workload cluster on it
// (separate --etcd-prefix); a kube-controller-manager per apiserver (real Job and PV
// controllers); the Function from a compiled snapshot of this checkout (mTLS); Crossplane core
// and provider-kubernetes out of cluster; a stand-in kubelet and provisioner per workload
// cluster. Every component logs to <run>/logs/<name>.log.
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

import { parseAllDocuments, stringify } from 'yaml';

import { Kube, kubeconfigYaml, type Json } from './kube.js';
import { functionImage, Kubelet } from './kubelet.js';
import { makePki, type Pki } from './pki.js';
import { Proc, waitFor, type ProcSpec } from './procs.js';
import { readPins, type Binaries } from './versions.js';
import { FUNCTION_SOURCE, prefillFunctionPackage } from './xpkg-cache.js';

export const PORTS = {
  etcd: 23790,
  etcdPeer: 23800,
  etcdMetrics: 23810,
  controlPlane: 6443,
  /** Workload cluster i (0-based) listens on workloadBase + i. */
  workloadBase: 7443,
  kcmBase: 10357,
  /** provider-kubernetes' webhook server is fixed at 9443, so the Function takes another port. */
  function: 9444,
  crossplaneWebhook: 9445,
  crossplaneMetrics: 18080,
  crossplaneHealth: 18081,
  providerHealth: 18091,
  /** provider-kubernetes has no metrics flag: controller-runtime's default :8080 (only lo exists). */
  providerMetrics: 8080,
} as const;

export const FUNCTION_NAME = 'function-modelcache';
export const CROSSPLANE_NS = 'crossplane-system';
/** Crossplane's --circuit-breaker-burst, as the README's operational advice sets it (default 100). */
export const CIRCUIT_BREAKER_BURST = 400;

export interface WorkloadCluster {
  index: number;
  name: string;
  kube: Kube;
  kubelet: Kubelet;
  kubeconfig: string;
  port: number;
}

export class Stack {
  readonly logs: string;
  readonly pki: Pki;
  readonly procs = new Map<string, Proc>();
  cp!: Kube;
  readonly workloads: WorkloadCluster[] = [];
  readonly app: string;
  readonly bins: Binaries;
  /**
   * The product under test (apis/, compositions/, examples/, package/, function/): the checkout
   * itself, or with E2E_SOURCE=HEAD its last commit exported into the run directory, so that
   * uncommitted edits in a shared checkout do not change a run.
   */
  readonly src: string;

  constructor(
    readonly root: string,
    readonly runDir: string,
    readonly workloadCount: number,
  ) {
    rmSync(runDir, { recursive: true, force: true });
    this.logs = join(runDir, 'logs');
    mkdirSync(this.logs, { recursive: true });
    this.pki = makePki(join(runDir, 'pki'));
    this.app = join(runDir, 'app');
    this.bins = readPins(root).binaries;
    this.src = root;
    if (process.env['E2E_SOURCE'] === 'HEAD') {
      this.src = join(runDir, 'src');
      mkdirSync(this.src, { recursive: true });
      execFileSync('sh', ['-c', `git -C "$1" archive HEAD | tar -x -C "$2"`, 'sh', root, this.src]);
      symlinkSync(realpathSync(join(root, 'node_modules')), join(this.src, 'node_modules'));
    }
  }

  private proc(spec: ProcSpec): Proc {
    const p = new Proc(spec, this.logs);
    this.procs.set(spec.name, p);
    p.start();
    return p;
  }

  get(name: string): Proc {
    const p = this.procs.get(name);
    if (!p) throw new Error(`no component ${name}`);
    return p;
  }

  private say(msg: string): void {
    process.stdout.write(`  [stack] ${msg}\n`);
  }

  async up(): Promise<void> {
    const t0 = Date.now();
    const b = this.bins;
    for (const [what, path] of Object.entries(b) as [string, string][]) {
      if (!existsSync(path))
        throw new Error(`${what} is missing at ${path}: run test/e2e/build.sh`);
    }
    this.snapshotApp();
    this.proc({
      name: 'etcd',
      command: b.etcd,
      args: [
        '--name=e2e',
        `--data-dir=${join(this.runDir, 'etcd-data')}`,
        `--listen-client-urls=http://127.0.0.1:${PORTS.etcd}`,
        `--advertise-client-urls=http://127.0.0.1:${PORTS.etcd}`,
        `--listen-peer-urls=http://127.0.0.1:${PORTS.etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${PORTS.etcdPeer}`,
        `--initial-cluster=e2e=http://127.0.0.1:${PORTS.etcdPeer}`,
        `--listen-metrics-urls=http://127.0.0.1:${PORTS.etcdMetrics}`,
        '--unsafe-no-fsync',
      ],
    });
    await waitFor('etcd healthy', 30_000, async () => {
      const res = await fetch(`http://127.0.0.1:${PORTS.etcd}/health`);
      return res.ok ? true : undefined;
    });

    const clusters = [
      { name: 'cp', port: PORTS.controlPlane, prefix: '/registry-cp' },
      ...Array.from({ length: this.workloadCount }, (_, i) => ({
        name: `wl-${i + 1}`,
        port: PORTS.workloadBase + i,
        prefix: `/registry-wl-${i + 1}`,
      })),
    ];
    for (const c of clusters) this.apiserver(c.name, c.port, c.prefix);
    const kubes = clusters.map((c) => {
      const kubeconfig = join(this.runDir, `${c.name}.kubeconfig`);
      const server = `https://127.0.0.1:${c.port}`;
      writeFileSync(
        kubeconfig,
        kubeconfigYaml(server, this.pki.ca, this.pki.admin.cert, this.pki.admin.key),
      );
      return new Kube(
        {
          name: c.name,
          server,
          kubeconfig,
          caFile: this.pki.ca,
          certFile: this.pki.admin.cert,
          keyFile: this.pki.admin.key,
        },
        b.kubectl,
      );
    });
    for (const k of kubes) {
      await waitFor(`${k.access.name} apiserver ready`, 90_000, async () => {
        await k.request('GET', '/readyz');
        return true;
      });
    }
    clusters.forEach((c, i) => {
      this.kcm(c.name, PORTS.kcmBase + i);
    });
    this.cp = kubes[0] as Kube;
    this.say(
      `etcd and ${clusters.length} apiservers up in ${Math.round((Date.now() - t0) / 1000)} s`,
    );

    await this.installUpstreamCrds();
    const image = prefillFunctionPackage(
      join(this.src, 'package', 'function'),
      join(this.runDir, 'xpkg-cache'),
    );
    await this.registerFunction(image);
    this.proc({
      name: 'function',
      command: process.execPath,
      args: [
        join(this.app, 'dist/function/main.js'),
        '--debug',
        '--tls-certs-dir',
        this.pki.serverTlsDir,
        '--address',
        `127.0.0.1:${PORTS.function}`,
      ],
      cwd: this.app,
    });
    await waitFor('Function listening', 60_000, () =>
      this.get('function').logSince(0).includes('"msg":"listening"') ? true : undefined,
    );
    await this.installUsageWebhook();
    this.startCrossplane();
    this.startProvider();

    const image2 = functionImage(
      this.app,
      realpathSync(join(this.root, 'node_modules')),
      dockerfileEnv(readFileSync(join(this.src, 'Dockerfile'), 'utf8')),
    );
    for (let i = 0; i < this.workloadCount; i++) {
      const kube = kubes[i + 1] as Kube;
      const kubelet = new Kubelet(kube, {
        node: `e2e-node-${i + 1}`,
        workDir: join(this.runDir, `kubelet-wl-${i + 1}`),
        apiHost: '127.0.0.1',
        apiPort: PORTS.workloadBase + i,
        caFile: this.pki.ca,
        images: new Map([[FUNCTION_SOURCE, image2]]),
        log: join(this.logs, `kubelet-wl-${i + 1}.log`),
      });
      kubelet.start();
      this.workloads.push({
        index: i,
        name: `wl-${i + 1}`,
        kube,
        kubelet,
        kubeconfig: kube.access.kubeconfig,
        port: PORTS.workloadBase + i,
      });
    }
    await this.installConfiguration();
    this.say(`control plane up in ${Math.round((Date.now() - t0) / 1000)} s; logs in ${this.logs}`);
  }

  /**
   * The code under test, compiled once into the run directory: the Function and the fetch pods
   * run this copy, so edits or rebuilds in the checkout mid-run change nothing.
   */
  private snapshotApp(): void {
    const t = Date.now();
    mkdirSync(this.app, { recursive: true });
    execFileSync(
      join(this.root, 'node_modules/.bin/tsc'),
      ['-p', join(this.src, 'tsconfig.build.json'), '--outDir', join(this.app, 'dist')],
      { cwd: this.src, stdio: 'inherit' },
    );
    cpSync(join(this.src, 'package.json'), join(this.app, 'package.json'));
    // The same absolute path inside pods (the kubelet binds it there), so one symlink serves both.
    symlinkSync(realpathSync(join(this.root, 'node_modules')), join(this.app, 'node_modules'));
    this.say(`Function compiled into ${this.app} in ${Math.round((Date.now() - t) / 1000)} s`);
  }

  private apiserver(name: string, port: number, prefix: string): void {
    const p = this.pki;
    this.proc({
      name: `apiserver-${name}`,
      command: this.bins.kubeApiserver,
      args: [
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${port}`,
        `--etcd-servers=http://127.0.0.1:${PORTS.etcd}`,
        `--etcd-prefix=${prefix}`,
        `--tls-cert-file=${p.apiserver.cert}`,
        `--tls-private-key-file=${p.apiserver.key}`,
        `--client-ca-file=${p.ca}`,
        `--service-account-key-file=${p.saPub}`,
        `--service-account-signing-key-file=${p.saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--authorization-mode=Node,RBAC',
        '--service-cluster-ip-range=10.0.0.0/24',
        // Endpoints may not hold loopback addresses; nothing here needs the kubernetes Service's.
        '--endpoint-reconciler-type=none',
        '--profiling=false',
        `--cert-dir=${join(this.runDir, `apiserver-${name}-certs`)}`,
      ],
    });
  }

  private kcm(name: string, port: number): void {
    const kc = join(this.runDir, `${name}.kubeconfig`);
    this.proc({
      name: `kcm-${name}`,
      command: this.bins.kubeControllerManager,
      args: [
        `--kubeconfig=${kc}`,
        `--authentication-kubeconfig=${kc}`,
        `--authorization-kubeconfig=${kc}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${join(this.runDir, `kcm-${name}-certs`)}`,
        '--leader-elect=false',
        `--service-account-private-key-file=${this.pki.saKey}`,
        `--root-ca-file=${this.pki.ca}`,
        // No cloud, no node IPAM, no node lifecycle (the stand-in kubelet's Node is not a real one).
        '--controllers=*,-nodeipam,-nodelifecycle,-service-lb-controller,-cloud-node-lifecycle-controller,-route,-ttl,-bootstrapsigner,-tokencleaner',
      ],
    });
  }

  private async installUpstreamCrds(): Promise<void> {
    await this.cp.apply(
      stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: CROSSPLANE_NS } }),
    );
    const docs: string[] = [];
    for (const f of yamlFiles(this.bins.crossplaneCrds)) docs.push(readFileSync(f, 'utf8'));
    for (const f of yamlFiles(this.bins.providerCrds)) {
      const text = readFileSync(f, 'utf8');
      const out: string[] = [];
      for (const d of parseAllDocuments(text)) {
        const crd = d.toJS() as Json | null;
        if (!crd) continue;
        const conv = (crd['spec'] as Json | undefined)?.['conversion'] as Json | undefined;
        if (conv?.['strategy'] === 'Webhook') {
          // As shipped, the webhook names no service (Crossplane's package manager fills it in);
          // here it is the provider's webhook server on loopback.
          const webhook = (conv['webhook'] as Json | undefined) ?? {};
          webhook['clientConfig'] = {
            url: 'https://127.0.0.1:9443/convert',
            caBundle: readFileSync(this.pki.ca).toString('base64'),
          };
          conv['webhook'] = webhook;
        }
        out.push(stringify(crd));
      }
      docs.push(out.join('---\n'));
    }
    await this.cp.apply(docs.join('\n---\n'));
    // kubectl wait fails on a CRD whose status is not written yet; poll instead.
    await waitFor('every CRD Established', 120_000, async () => {
      const crds = await this.cp.list('/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
      return crds.every((c) => established(c, ['Established'])) ? true : undefined;
    });
  }

  private async registerFunction(image: string): Promise<void> {
    await this.cp.apply(
      stringify({
        apiVersion: 'pkg.crossplane.io/v1',
        kind: 'FunctionRevision',
        metadata: {
          name: `${FUNCTION_NAME}-local`,
          labels: { 'pkg.crossplane.io/package': FUNCTION_NAME },
        },
        spec: {
          desiredState: 'Active',
          image,
          revision: 1,
          packagePullPolicy: 'Never',
          skipDependencyResolution: true,
          ignoreCrossplaneConstraints: true,
        },
      }),
    );
    // The TLS server Secret the package runtime would have made: the revision controller reads
    // tls.crt from it before it establishes the package's objects.
    await this.cp.apply(
      stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: `${FUNCTION_NAME}-tls-server`, namespace: CROSSPLANE_NS },
        data: {
          'tls.crt': readFileSync(this.pki.serverCert).toString('base64'),
          'tls.key': readFileSync(this.pki.serverKey).toString('base64'),
        },
      }),
    );
    await this.cp.mergePatch(
      `/apis/pkg.crossplane.io/v1/functionrevisions/${FUNCTION_NAME}-local/status`,
      {
        status: {
          endpoint: `127.0.0.1:${PORTS.function}`,
          capabilities: ['composition'],
          tlsServerSecretName: `${FUNCTION_NAME}-tls-server`,
        },
      },
    );
  }

  private async installUsageWebhook(): Promise<void> {
    const out: string[] = [];
    for (const d of parseAllDocuments(readFileSync(this.bins.usageWebhook, 'utf8'))) {
      const cfg = d.toJS() as Json | null;
      if (!cfg) continue;
      for (const w of (cfg['webhooks'] as Json[] | undefined) ?? []) {
        const svc = (w['clientConfig'] as Json | undefined)?.['service'] as Json | undefined;
        w['clientConfig'] = {
          url: `https://127.0.0.1:${PORTS.crossplaneWebhook}${typeof svc?.['path'] === 'string' ? svc['path'] : ''}`,
          caBundle: readFileSync(this.pki.ca).toString('base64'),
        };
      }
      out.push(stringify(cfg));
    }
    await this.cp.apply(out.join('---\n'));
  }

  startCrossplane(): void {
    this.proc({
      name: 'crossplane',
      command: this.bins.crossplane,
      args: [
        '--debug',
        'core',
        'start',
        `--namespace=${CROSSPLANE_NS}`,
        // No Deployments for Functions or Providers: nothing overwrites the local endpoint.
        '--package-runtime=External',
        '--enable-webhooks',
        `--webhook-port=${PORTS.crossplaneWebhook}`,
        `--tls-server-certs-dir=${this.pki.serverTlsDir}`,
        `--tls-client-certs-dir=${this.pki.clientTlsDir}`,
        `--xpkg-cache-dir=${join(this.runDir, 'xpkg-cache')}`,
        `--metrics-port=${PORTS.crossplaneMetrics}`,
        `--health-probe-port=${PORTS.crossplaneHealth}`,
        '--poll-interval=1m',
        // What the README advises operators (a replica's first minute makes ~55 watch events,
        // each update costing two tokens): with the default burst of 100 every new replica's
        // breaker opened within seconds (test/e2e/README.md).
        `--circuit-breaker-burst=${CIRCUIT_BREAKER_BURST}`,
      ],
      env: { KUBECONFIG: this.cp.access.kubeconfig },
    });
  }

  startProvider(): void {
    this.proc({
      name: 'provider-kubernetes',
      command: this.bins.providerKubernetes,
      args: [
        // Not --debug: at debug level provider-kubernetes logs every Object whole, including
        // the Secret values patchesFrom copied into its spec (seen here; test/e2e/README.md).
        `--health-probe-bind-addr=127.0.0.1:${PORTS.providerHealth}`,
        '--poll=1m',
        // What the README advises operators: the claim and Job Objects set spec.watch, so
        // binding and completion are seen when they happen (without it an unready Object is
        // re-observed about every 30 s, which most scenarios' seconds to Ready showed).
        '--enable-watches',
        // What the README advises operators: values patched from Secrets are not written back.
        '--sanitize-secrets',
      ],
      env: { KUBECONFIG: this.cp.access.kubeconfig, TLS_SERVER_CERTS_DIR: this.pki.serverTlsDir },
    });
  }

  /** Restarts a component (SIGTERM, wait, start again with the same flags; its log continues). */
  async restart(name: string, opts: { kill?: boolean } = {}): Promise<void> {
    const p = this.get(name);
    if (opts.kill) await p.kill();
    else await p.stop();
    const from = p.logSize();
    p.start();
    if (name === 'function') {
      await waitFor('Function listening again', 60_000, () =>
        p.logSince(from).includes('"msg":"listening"') ? true : undefined,
      );
    }
  }

  /** The Configuration's contents, applied directly: every XRD under apis/ and every Composition. */
  private async installConfiguration(): Promise<void> {
    const docs: string[] = [];
    for (const d of readdirSync(join(this.src, 'apis')).sort()) {
      const f = join(this.src, 'apis', d, 'definition.yaml');
      if (existsSync(f)) docs.push(readFileSync(f, 'utf8'));
    }
    for (const f of yamlFiles(join(this.src, 'compositions'))) docs.push(readFileSync(f, 'utf8'));
    await this.cp.apply(docs.join('\n---\n'));
    await waitFor(
      'every XRD Established (v2 namespaced XRDs offer no claims, so no Offered)',
      180_000,
      async () => {
        const xrds = await this.cp.list(
          '/apis/apiextensions.crossplane.io/v2/compositeresourcedefinitions',
        );
        const ok = xrds.every((x) => established(x, ['Established']));
        return ok && xrds.length > 0 ? xrds.length : undefined;
      },
      1000,
    );
  }

  async down(): Promise<void> {
    for (const w of this.workloads) await w.kubelet.stop();
    const order = ['provider-kubernetes', 'crossplane', 'function'];
    for (const n of order) await this.procs.get(n)?.stop(5000);
    for (const [n, p] of [...this.procs].reverse()) if (!order.includes(n)) await p.stop(5000);
    this.cp.close();
    for (const w of this.workloads) w.kube.close();
  }
}

/** The ENV of the Dockerfile's final stage (`ENV K=V` lines after the last FROM): the image's environment. */
export function dockerfileEnv(text: string): Record<string, string> {
  const lines = text.split('\n');
  const last = lines.map((l) => /^FROM\s/i.test(l.trim())).lastIndexOf(true);
  const env: Record<string, string> = {};
  for (const l of lines.slice(last + 1)) {
    const m = /^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$/.exec(l.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) env[m[1]] = m[2];
  }
  return env;
}

function established(o: Json, types: string[]): boolean {
  const conds = ((o['status'] as Json | undefined)?.['conditions'] as Json[] | undefined) ?? [];
  return types.every((t) => conds.some((c) => c['type'] === t && c['status'] === 'True'));
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));
}
