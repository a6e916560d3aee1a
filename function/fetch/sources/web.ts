// Helpers shared by the sources that speak HTTP through fetch (http, huggingFace).
import { Readable } from 'node:stream';

import { redactUrls } from '../../contract/redact.js';
import {
  FetchError,
  HttpStatusError,
  hasControlCharacter,
  parseRetryAfter,
  serverPhrase,
  statusRetryable,
} from '../errors.js';

/** Where a response came from, safe to print: no query string, no userinfo. */
export function where(url: string): string {
  return redactUrls(url);
}

/**
 * A fetch that carries `signal`, and turns transient statuses (429, 408, 5xx) into
 * HttpStatusError with the server's Retry-After before any caller sees the response, so
 * the engine's retry loop handles them the same way for every source and library.
 */
export function guardedFetch(signal: AbortSignal, base: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const res = await base(input, { ...init, signal });
    if (statusRetryable(res.status)) {
      await res.body?.cancel().catch(() => undefined);
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      throw new HttpStatusError(
        res.status,
        where(res.url || url),
        parseRetryAfter(res.headers.get('retry-after')),
      );
    }
    return res;
  };
}

/**
 * A final (non-retryable) error for an HTTP status, naming the URL without its query. The
 * reason phrase is the server's own text: shown bounded and stripped of control characters.
 */
export async function statusError(res: Response, url: string): Promise<FetchError> {
  await res.body?.cancel().catch(() => undefined);
  const phrase = serverPhrase(res.statusText);
  return new FetchError(
    `HTTP ${res.status}${phrase !== '' ? ` ${phrase}` : ''} from ${where(res.url || url)}`,
  );
}

/** A web body as a Node stream (async iterable of chunks, destroyed on abort). */
export function nodeBody(body: ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> {
  if (body === null) return Readable.from([]);
  return Readable.fromWeb(body);
}

/** Total size from `Content-Range: bytes a-b/total`, or undefined. */
export function contentRangeTotal(header: string | null): number | undefined {
  const m = header ? /\/(\d+)\s*$/.exec(header) : null;
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/** First byte from `Content-Range: bytes a-b/total`, or undefined. */
export function contentRangeStart(header: string | null): number | undefined {
  const m = header ? /^\s*bytes\s+(\d+)-/.exec(header) : null;
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * Read a token from the env variable the plan names; a named but empty variable is an
 * error, and so is a token with a line break or another control character inside it (the
 * message never quotes it: a header error would, and it would end up in status).
 */
export function tokenFromEnv(name: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (name === undefined) return undefined;
  const value = env[name];
  if (value === undefined || value === '') {
    throw new FetchError(`the plan names env ${name} for the token, but it is not set`);
  }
  const token = value.trim();
  if (hasControlCharacter(token)) {
    throw new FetchError(
      `env ${name} (the token) contains a control character (a line break?) inside it; the Secret must hold the token alone, on one line`,
    );
  }
  return token;
}
