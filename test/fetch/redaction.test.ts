// Issue 13, secrets and server text: no secret in any form, no userinfo or query string of a
// URL, and no raw server reason phrase reaches a message, the termination log, the Job
// annotation, the logs or the Function's status summary.
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  ANNOTATION_FETCH_ERROR,
  ENV_FETCH_PLAN,
  EXIT_PERMANENT,
} from '../../function/constants.js';
import { redactUrls } from '../../function/contract/redact.js';
import { main } from '../../function/fetch/cli.js';
import { describe as describeError, redact } from '../../function/fetch/errors.js';
import { KubeReporter } from '../../function/fetch/reporter.js';
import { httpParts } from '../../function/modelcache/sources/http.js';
import { capturedLogger, fastOptions, planFor, scratch } from '../support/fetch-harness.js';
import { startHttpServer, type HttpTestServer } from '../support/fetch-http.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fetch-kube.js';

const TOKEN = 'tokenPART1\r\ntokenPART2secret';
/** Every piece of TOKEN a message could carry. */
const PIECES = [
  'tokenPART1',
  'tokenPART2secret',
  'tokenPART1 tokenPART2secret',
  Buffer.from(TOKEN).toString('base64'),
];

let files: HttpTestServer;
let api: FakeApiServer;
let volume: ReturnType<typeof scratch> | undefined;

beforeAll(async () => {
  files = await startHttpServer({ '/model.bin': Buffer.from('weights\n') });
  api = await startFakeApiServer();
});
afterAll(async () => {
  await files.close();
  await api.close();
});
afterEach(() => {
  api.patches.length = 0;
  volume?.cleanup();
  volume = undefined;
});

/** Run the whole program as the Job does, reporting to the fake API server. */
async function runProgram(source: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  volume = scratch();
  const terminationLog = join(volume.dir, 'termination-log');
  writeFileSync(terminationLog, '');
  const plan = planFor(source as never, volume.dir);
  const { log, lines } = capturedLogger();
  const outcome = await main({
    env: { [ENV_FETCH_PLAN]: JSON.stringify(plan), ...env },
    log,
    reporter: (p, l) =>
      new KubeReporter({
        host: api.host,
        port: api.port,
        ...p.report,
        tokenPath: `${api.serviceAccountDir}/token`,
        caPath: `${api.serviceAccountDir}/ca.crt`,
        intervalMs: 100,
        timeoutMs: 2_000,
        log: l,
      }),
    terminationLog,
    options: fastOptions(),
  });
  return {
    outcome,
    terminationMessage: readFileSync(terminationLog, 'utf8'),
    annotation: (
      api.patches.at(-1)?.body as
        { metadata: { annotations: Record<string, string | null> } } | undefined
    )?.metadata.annotations[ANNOTATION_FETCH_ERROR],
    logs: JSON.stringify(lines),
  };
}

describe('issue13 #1: secrets', () => {
  it.each([
    {
      reason: 'raw, inside a library message',
      text: `Headers.append: "Bearer ${TOKEN}" is an invalid header value.`,
      expected: 'Headers.append: "Bearer ***" is an invalid header value.',
    },
    {
      reason: 'whitespace-collapsed by describe()',
      text: describeError(new TypeError(`Headers.append: "Bearer ${TOKEN}" is invalid`)),
      expected: 'Headers.append: "Bearer ***" is invalid',
    },
    {
      reason: 'one line of it alone',
      text: 'the server said: tokenPART2secret is unknown',
      expected: 'the server said: *** is unknown',
    },
    {
      reason: 'base64-encoded',
      text: `echoed ${Buffer.from(TOKEN).toString('base64')} back`,
      expected: 'echoed *** back',
    },
    {
      reason: 'JSON-escaped, as a log line carries it',
      text: JSON.stringify({ header: `Bearer ${TOKEN}` }),
      expected: '{"header":"Bearer ***"}',
    },
  ])(
    'issue13 #1: a token with an inner CR/LF is redacted in every form ($reason)',
    ({ text, expected }) => {
      expect(redact(text, [TOKEN])).toBe(expected);
    },
  );

  it.each([
    {
      reason: 'http source',
      source: () => ({
        type: 'http',
        url: files.url('/model.bin'),
        path: 'm.bin',
        tokenEnv: 'TOK',
      }),
    },
    {
      reason: 'huggingFace source',
      source: () => ({
        type: 'huggingFace',
        repo: 'acme/tiny',
        revision: 'main',
        endpoint: files.base,
        tokenEnv: 'TOK',
      }),
    },
  ])(
    'issue13 #1: a token with control characters is refused up front and quoted nowhere ($reason)',
    async ({ source }) => {
      const line =
        'env TOK (the token) contains a control character (a line break?) inside it; the Secret must hold the token alone, on one line';
      const got = await runProgram(source(), { TOK: TOKEN });
      expect(got.outcome).toEqual({ code: EXIT_PERMANENT, line });
      expect(got.terminationMessage).toBe(`${line}\n`);
      expect(got.annotation).toBe(line);
      for (const piece of PIECES) expect(got.logs).not.toContain(piece);
      expect(files.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
    },
  );

  it('issue13 #1: S3 credentials with control characters are refused up front and quoted nowhere', async () => {
    const got = await runProgram(
      { type: 's3', bucket: 'b', prefix: 'p/', endpoint: files.base, credentialsFromEnv: true },
      { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: TOKEN },
    );
    const line =
      'env AWS_SECRET_ACCESS_KEY (the S3 credentials) contains a control character (a line break?) inside it; the Secret must hold it alone, on one line';
    expect(got.outcome).toEqual({ code: EXIT_PERMANENT, line });
    expect(got.terminationMessage).toBe(`${line}\n`);
    expect(got.annotation).toBe(line);
    for (const piece of PIECES) expect(got.logs).not.toContain(piece);
  });
});

describe('issue13 #3: URLs', () => {
  it.each([
    {
      reason: 'a signed query string',
      text: 'GET https://cdn.example/x?X-Amz-Signature=abc&X-Amz-Credential=AKID failed',
      expected: 'GET https://cdn.example/x failed',
    },
    {
      reason: 'userinfo',
      text: 'from https://alice:s3cret@example.com/m.bin',
      expected: 'from https://example.com/m.bin',
    },
    {
      reason: 'userinfo whose password holds an @',
      text: 'from https://alice:p@ss@example.com/m.bin',
      expected: 'from https://example.com/m.bin',
    },
    {
      reason: 'an upper-case scheme',
      text: 'from HTTPS://alice:pw@example.com/m.bin?sig=1',
      expected: 'from HTTPS://example.com/m.bin',
    },
    {
      reason: 'a fragment and a quoted URL',
      text: 'fetching "http://example.com/a#token=abc" failed',
      expected: 'fetching "http://example.com/a" failed',
    },
    {
      reason: 'an @ in the path is not userinfo',
      text: 'hf://acme/tiny@main from https://hub.example/api/models/acme/tiny@main',
      expected: 'hf://acme/tiny@main from https://hub.example/api/models/acme/tiny@main',
    },
  ])('issue13 #3: redacts $reason wherever a URL is shown', ({ text, expected }) => {
    expect(redactUrls(text)).toBe(expected);
  });

  it('issue13 #3: the Function’s status.source summary of an http URL has no userinfo or query', () => {
    const parts = httpParts(
      { url: 'https://alice:pw@example.com/models/m.bin?X-Amz-Signature=abc#frag' },
      { namespace: 'team-a', remoteSecretName: 's', filesDir: '/files' },
    );
    expect(parts.summary).toBe('https://example.com/models/m.bin');
  });

  it('issue13 #3: an http.url with userinfo is refused by the fetch program without quoting it', async () => {
    const url = `${files.base.replace('http://', 'http://alice:p@ss@')}/model.bin?sig=qsecret`;
    const got = await runProgram({ type: 'http', url, path: 'm.bin' });
    const line = `the URL ${files.url('/model.bin')} carries a user name or password, which is never sent; give a token through the source's Secret instead`;
    expect(got.outcome).toEqual({ code: EXIT_PERMANENT, line });
    expect(got.annotation).toBe(line);
    for (const piece of ['alice', 'ss@', 'qsecret']) {
      expect(got.logs + got.terminationMessage).not.toContain(piece);
    }
  });
  it('issue13 #3: an S3 endpoint’s userinfo reaches neither the logs nor the final line', async () => {
    const endpoint = files.base.replace('http://', 'http://alice:pw-secret@');
    const got = await runProgram(
      { type: 's3', bucket: 'b', prefix: 'p/', endpoint, credentialsFromEnv: true },
      { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' },
    );
    expect(got.outcome.code).toBe(EXIT_PERMANENT);
    expect(got.outcome.line).toMatch(new RegExp(`^listing s3://b/p/ at ${files.base}: `));
    expect(got.logs + got.terminationMessage).not.toContain('pw-secret');
    expect(got.logs).toContain(`"source":"s3://b/p/ at ${files.base}"`);
  });
});

describe('issue13 #4: reason phrases', () => {
  let raw: Server;
  let base: string;
  const PHRASE = `Not Found \x1b[31mred\x1b[0m ${'A'.repeat(3000)} \u00e9\u00ff`;
  beforeAll(async () => {
    // A server that writes its own status line: Node's http server refuses such phrases.
    raw = createServer((socket) => {
      socket.once('data', () => {
        socket.end(
          Buffer.concat([
            Buffer.from('HTTP/1.1 404 '),
            Buffer.from(PHRASE, 'latin1'),
            Buffer.from('\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
          ]),
        );
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) =>
      raw.close(() => {
        resolve();
      }),
    );
  });

  it('issue13 #4: a server’s reason phrase is shown after the status code, bounded and sanitized', async () => {
    const got = await runProgram({ type: 'http', url: `${base}/x`, path: 'x' });
    const phrase = `${'Not Found [31mred[0m '.padEnd(64, 'A')}…`;
    const line = `listing ${base}/x: HTTP 404 ${phrase} from ${base}/x`;
    expect(got.outcome).toEqual({ code: EXIT_PERMANENT, line });
    expect(got.annotation).toBe(line);
    expect(got.terminationMessage).toBe(`${line}\n`);
  });
});
