// The benchmarks' transport: mTLS as Crossplane always dials Functions (a client certificate and
// the CA that signed the Function's), with throwaway certificates made for the run, or plaintext.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { goCerts } from './go-client.js';

export interface Transport {
  tls: boolean;
  /** For forkServer: the server's certificates. */
  serve: { tlsCertsDir?: string };
  /** For goCall: the client's certificates, as Crossplane's --tls-client-certs-dir. */
  call: { tlsCertsDir?: string };
  /** For a grpc-js client (newRawClient). */
  raw: grpc.ChannelCredentials;
  /** The certificate names localhost too: a name keeps Node from warning of an IP as SNI. */
  rawOptions: grpc.ChannelOptions;
  close(): void;
}

export async function benchTransport(tls: boolean): Promise<Transport> {
  if (!tls) {
    return {
      tls,
      serve: {},
      call: {},
      raw: grpc.credentials.createInsecure(),
      rawOptions: {},
      close: () => undefined,
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-tls-'));
  const certs = await goCerts(dir);
  const read = (name: string): Buffer => readFileSync(join(certs.client, name));
  return {
    tls,
    serve: { tlsCertsDir: certs.server },
    call: { tlsCertsDir: certs.client },
    raw: grpc.credentials.createSsl(read('ca.crt'), read('tls.key'), read('tls.crt')),
    rawOptions: { 'grpc.ssl_target_name_override': 'localhost' },
    close: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
