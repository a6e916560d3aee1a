// Helpers shared by the sources that speak HTTP through fetch (http, huggingFace).
import { Readable } from 'node:stream';

import { redactUrls } from '../../contract/redact.js';
import {
  DeadlineError,
  StallError,
  Throughput,
  Watch,
  watched,
  type RequestLimits,
} from '../deadline.js';
import {
  FetchError,
  HttpStatusError,
  hasControlCharacter,
  parseRetryAfter,
  serverPhrase,
  statusPermanent,
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
 *
 * With `limits`, a metadata request (listing, API call): nothing received for the stall
 * timeout, a body under the minimum rate, or no completion within the request deadline
 * aborts it. Without, a download: the engine watches those itself.
 */
export function guardedFetch(
  signal: AbortSignal,
  base: typeof fetch = fetch,
  limits?: RequestLimits,
): typeof fetch {
  return async (input, init) => {
    const watch = new Watch(signal);
    const cancelSilence = limits
      ? watch.after(limits.stallTimeoutMs, () => StallError.silent(limits))
      : () => undefined;
    if (limits) watch.after(limits.requestTimeoutMs, () => new DeadlineError(limits));
    let res: Response;
    try {
      res = await base(input, { ...init, signal: watch.signal });
    } catch (err) {
      watch.dispose();
      throw watched(watch, err);
    } finally {
      cancelSilence();
    }
    if (statusRetryable(res.status)) {
      watch.dispose();
      await res.body?.cancel().catch(() => undefined);
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      throw new HttpStatusError(
        res.status,
        where(res.url || url),
        parseRetryAfter(res.headers.get('retry-after')),
      );
    }
    return limits ? meteredBody(res, limits, watch) : res;
  };
}

/** Statuses whose Response may not carry a body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

/** `res` with its body under the minimum-throughput rule; the watch ends with the body. */
function meteredBody(res: Response, limits: RequestLimits, watch: Watch): Response {
  if (res.body === null || NULL_BODY.has(res.status)) {
    watch.dispose();
    return res;
  }
  const meter = new Throughput(limits, watch);
  const done = (): void => {
    meter.stop();
    watch.dispose();
  };
  const chunks = (res.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await chunks.next();
        if (chunk.done) {
          done();
          controller.close();
          return;
        }
        meter.feed(chunk.value.byteLength);
        controller.enqueue(chunk.value);
      } catch (err) {
        done();
        controller.error(watched(watch, err));
      }
    },
    async cancel(reason: unknown) {
      done();
      await chunks.return?.(reason);
    },
  });
  const out = new Response(body, { status: res.status, headers: res.headers });
  // Callers name the URL the answer came from (after redirects) in their messages; the
  // reason phrase is copied as is (the constructor refuses what a server may send).
  Object.defineProperty(out, 'url', { value: res.url });
  Object.defineProperty(out, 'redirected', { value: res.redirected });
  Object.defineProperty(out, 'statusText', { value: res.statusText });
  return out;
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
    undefined,
    statusPermanent(res.status),
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
    throw FetchError.permanent(`the plan names env ${name} for the token, but it is not set`);
  }
  const token = value.trim();
  if (hasControlCharacter(token)) {
    throw FetchError.permanent(
      `env ${name} (the token) contains a control character (a line break?) inside it; the Secret must hold the token alone, on one line`,
    );
  }
  return token;
}
