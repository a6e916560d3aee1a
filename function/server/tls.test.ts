import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as grpc from '@grpc/grpc-js';
import { generate, type GenerateResult } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TlsConfigError, serverCredentials } from './tls.js';

const HINT =
  'Point --tls-certs-dir (or TLS_SERVER_CERTS_DIR) at the directory holding tls.crt, tls.key ' +
  'and ca.crt, or pass --insecure for local development.';

let root: string;
let ca: GenerateResult;
let server: GenerateResult;
let stranger: GenerateResult;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'modelcache-tls-unit-'));
  ca = await generate([{ name: 'commonName', value: 'test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }],
  });
  server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
  });
  stranger = await generate([{ name: 'commonName', value: 'someone else' }], {
    keyType: 'ec',
    algorithm: 'sha256',
  });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirs = 0;
/** A fresh certs dir holding exactly the given files. */
async function certsDir(files: Record<string, string>): Promise<string> {
  const dir = join(root, `case-${String(++dirs)}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), content);
  }
  return dir;
}

function validFiles(): Record<string, string> {
  return { 'tls.crt': server.cert, 'tls.key': server.private, 'ca.crt': ca.cert };
}

function validFilesWithout(name: string): Record<string, string> {
  return Object.fromEntries(Object.entries(validFiles()).filter(([n]) => n !== name));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('serverCredentials', () => {
  it('returns insecure credentials with --insecure and never reads the dir', () => {
    const creds = serverCredentials({ insecure: true, tlsCertsDir: '/does/not/exist' });
    expect(creds._isSecure()).toBe(false);
    expect(creds._equals(grpc.ServerCredentials.createInsecure())).toBe(true);
  });

  it('requires client certificates signed by ca.crt (mTLS), serving tls.crt/tls.key', async () => {
    const dir = await certsDir(validFiles());
    const creds = serverCredentials({ insecure: false, tlsCertsDir: dir });

    const pair = [
      { private_key: Buffer.from(server.private), cert_chain: Buffer.from(server.cert) },
    ];
    const caPem = Buffer.from(ca.cert);
    expect(creds._equals(grpc.ServerCredentials.createSsl(caPem, pair, true))).toBe(true);
    // The SDK's loader passed false here, which lets any client in.
    expect(creds._equals(grpc.ServerCredentials.createSsl(caPem, pair, false))).toBe(false);
  });

  it('names every missing file when the directory does not exist', () => {
    const dir = join(root, 'nope');
    const err = thrown(() => serverCredentials({ insecure: false, tlsCertsDir: dir }));
    expect(err).toBeInstanceOf(TlsConfigError);
    expect(err).toEqual(
      new TlsConfigError(
        `TLS certificate files not found: ${dir}/tls.crt, ${dir}/tls.key, ${dir}/ca.crt. ${HINT}`,
      ),
    );
  });

  it('names only the file that is missing', async () => {
    const dir = await certsDir(validFilesWithout('ca.crt'));
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new TlsConfigError(`TLS certificate files not found: ${dir}/ca.crt. ${HINT}`),
    );
  });

  it('treats a dir path that runs through a file as missing', async () => {
    const dir = await certsDir(validFiles());
    const through = join(dir, 'tls.crt');
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: through })).toThrow(
      new TlsConfigError(
        `TLS certificate files not found: ${through}/tls.crt, ${through}/tls.key, ` +
          `${through}/ca.crt. ${HINT}`,
      ),
    );
  });

  it('reports a file it cannot read with the error code, not a stack', async () => {
    const dir = await certsDir(validFilesWithout('tls.key'));
    await mkdir(join(dir, 'tls.key'));
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new TlsConfigError(`cannot read ${dir}/tls.key: EISDIR. ${HINT}`),
    );
  });

  it('rejects a tls.crt that is not a certificate, naming it', async () => {
    const dir = await certsDir({ ...validFiles(), 'tls.crt': 'not a certificate' });
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new RegExp(`^${dir}/tls\\.crt is not a PEM certificate: .+`),
    );
  });

  it('rejects a ca.crt that is not a certificate, naming it', async () => {
    const dir = await certsDir({ ...validFiles(), 'ca.crt': '' });
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new RegExp(`^${dir}/ca\\.crt is not a PEM certificate: .+`),
    );
  });

  it('rejects a tls.key that is not a private key, naming it', async () => {
    const dir = await certsDir({ ...validFiles(), 'tls.key': server.cert });
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new RegExp(`^${dir}/tls\\.key is not a PEM private key: .+`),
    );
  });

  it('rejects a tls.key that does not belong to tls.crt', async () => {
    const dir = await certsDir({ ...validFiles(), 'tls.key': stranger.private });
    expect(() => serverCredentials({ insecure: false, tlsCertsDir: dir })).toThrow(
      new TlsConfigError(
        `${dir}/tls.key is not the private key of the certificate in ${dir}/tls.crt`,
      ),
    );
  });
});
