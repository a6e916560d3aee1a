// gRPC server credentials. Crossplane talks to functions over mTLS with certificates it generates
// and mounts into the pod; the SDK's own loader made client certificates optional and crashed
// with a bare ENOENT when they were missing, so this one is strict and explains itself.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';
export const TLS_CA_FILE = 'ca.crt';

/** A misconfiguration the operator must fix; its message is meant to be shown as is. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

export interface TlsOptions {
  insecure: boolean;
  tlsCertsDir: string;
}

const HINT =
  `Point --tls-certs-dir (or TLS_SERVER_CERTS_DIR) at the directory holding ` +
  `${TLS_CERT_FILE}, ${TLS_KEY_FILE} and ${TLS_CA_FILE}, or pass --insecure for local development.`;

/**
 * Build the server credentials: plaintext when insecure, otherwise TLS that requires a client
 * certificate signed by ca.crt (Crossplane presents one; anything else must not reach the handler).
 * Reads and validates the files eagerly so a bad mount fails at startup, not on the first call.
 */
export function serverCredentials(opts: TlsOptions): grpc.ServerCredentials {
  if (opts.insecure) {
    return grpc.ServerCredentials.createInsecure();
  }

  const certPath = join(opts.tlsCertsDir, TLS_CERT_FILE);
  const keyPath = join(opts.tlsCertsDir, TLS_KEY_FILE);
  const caPath = join(opts.tlsCertsDir, TLS_CA_FILE);

  // Read all three before failing so one error names every missing file at once.
  const missing: string[] = [];
  const cert = readOrMissing(certPath, missing);
  const key = readOrMissing(keyPath, missing);
  const ca = readOrMissing(caPath, missing);
  if (cert === undefined || key === undefined || ca === undefined) {
    throw new TlsConfigError(`TLS certificate files not found: ${missing.join(', ')}. ${HINT}`);
  }

  const serverCert = parseCertificate(certPath, cert);
  parseCertificate(caPath, ca);
  const privateKey = parseKey(keyPath, key);
  if (!serverCert.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(`${keyPath} is not the private key of the certificate in ${certPath}`);
  }

  return grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true);
}

function readOrMissing(path: string, missing: string[]): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = errorCode(err);
    // ENOTDIR: a path component is a file, which for the operator is the same as "not there".
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      missing.push(path);
      return undefined;
    }
    // EACCES is the usual case: the function runs as uid 2000 and the mount is not readable.
    throw new TlsConfigError(`cannot read ${path}: ${code ?? describe(err)}. ${HINT}`);
  }
}

function parseCertificate(path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsConfigError(`${path} is not a PEM certificate: ${describe(err)}`);
  }
}

function parseKey(path: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TlsConfigError(`${path} is not a PEM private key: ${describe(err)}`);
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
