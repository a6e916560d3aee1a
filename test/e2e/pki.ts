// One private CA for the whole stack and the certificates signed by it (openssl): apiservers'
// serving cert, one loopback serving cert shared by the Function's gRPC server and the webhook
// servers, Crossplane's gRPC client cert, the admin client cert, the service-account key pair.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  apiserver: { cert: string; key: string };
  admin: { cert: string; key: string };
  saKey: string;
  saPub: string;
  /** tls.crt, tls.key, ca.crt: the layout the Function, Crossplane and provider-kubernetes read. */
  serverTlsDir: string;
  serverCert: string;
  serverKey: string;
  /** Crossplane's client certificate for dialling Functions (same layout). */
  clientTlsDir: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function sign(dir: string, name: string, subject: string, san: string, eku: string): void {
  openssl(dir, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  const ext = [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${eku}`,
    ...(san ? [`subjectAltName=${san}`] : []),
  ];
  writeFileSync(join(dir, `${name}.ext`), ext.join('\n') + '\n');
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
  ]);
  rmSync(join(dir, `${name}.csr`));
  rmSync(join(dir, `${name}.ext`));
}

export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const p = (f: string): string => join(dir, f);
  if (!existsSync(p('done'))) {
    openssl(dir, [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '30',
      '-subj',
      '/CN=modelcache-e2e-ca',
    ]);
    sign(
      dir,
      'apiserver',
      '/CN=kube-apiserver',
      'IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc',
      'serverAuth',
    );
    sign(dir, 'loopback', '/CN=loopback', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
    sign(dir, 'xp-client', '/CN=crossplane', '', 'clientAuth');
    sign(dir, 'admin', '/O=system:masters/CN=e2e-admin', '', 'clientAuth');
    openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
    openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    for (const [sub, name] of [
      ['server-tls', 'loopback'],
      ['client-tls', 'xp-client'],
    ] as const) {
      mkdirSync(p(sub), { recursive: true });
      copyFileSync(p(`${name}.crt`), p(`${sub}/tls.crt`));
      copyFileSync(p(`${name}.key`), p(`${sub}/tls.key`));
      copyFileSync(p('ca.crt'), p(`${sub}/ca.crt`));
    }
    writeFileSync(p('done'), '');
  }
  return {
    dir,
    ca: p('ca.crt'),
    apiserver: { cert: p('apiserver.crt'), key: p('apiserver.key') },
    admin: { cert: p('admin.crt'), key: p('admin.key') },
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
    serverTlsDir: p('server-tls'),
    serverCert: p('loopback.crt'),
    serverKey: p('loopback.key'),
    clientTlsDir: p('client-tls'),
  };
}
