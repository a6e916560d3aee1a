// One file from an http(s) URL with Node's fetch: optional sha256, optional bearer token, Range resume.
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../deadline.js';
import { FetchError } from '../errors.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Listing, OpenedBody, RemoteFile, Source } from './types.js';
import {
  contentRangeStart,
  contentRangeTotal,
  guardedFetch,
  nodeBody,
  statusError,
  tokenFromEnv,
  where,
} from './web.js';

type HttpPlan = Extract<FetchPlanSource, { type: 'http' }>;

export function httpSource(
  plan: HttpPlan,
  env: NodeJS.ProcessEnv,
  limits: RequestLimits = DEFAULT_REQUEST_LIMITS,
): Source {
  // fetch refuses such a URL with a message quoting it whole; say why without the secret.
  if (URL.canParse(plan.url)) {
    const parsed = new URL(plan.url);
    if (parsed.username !== '' || parsed.password !== '') {
      throw FetchError.permanent(
        `the URL ${where(plan.url)} carries a user name or password, which is never sent; give a token through the source's Secret instead`,
      );
    }
  }
  const token = tokenFromEnv(plan.tokenEnv, env);
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  // Ask for the bytes as stored: a transparently decompressed body would not match the size or digest.
  const base = { ...auth, 'accept-encoding': 'identity' };

  return {
    describe: where(plan.url),
    secrets: token ? [token] : [],
    ranges: true,

    async list(signal): Promise<Listing> {
      // A one-byte ranged GET instead of HEAD: presigned URLs are often signed for GET only,
      // and the 206 carries the total size and the validator in one round trip.
      const res = await guardedFetch(
        signal,
        fetch,
        limits,
      )(plan.url, {
        headers: { ...base, range: 'bytes=0-0' },
      });
      if (res.status !== 200 && res.status !== 206) throw await statusError(res, plan.url);
      await res.body?.cancel().catch(() => undefined);
      const size =
        res.status === 206
          ? contentRangeTotal(res.headers.get('content-range'))
          : res.headers.get('content-length') !== null
            ? Number(res.headers.get('content-length'))
            : undefined;
      const etag = res.headers.get('etag');
      // If-Range needs a strong validator; a weak ETag or none falls back to Last-Modified.
      const validator =
        etag !== null && !etag.startsWith('W/')
          ? etag
          : (res.headers.get('last-modified') ?? undefined);
      const file: RemoteFile = {
        path: plan.path,
        ...(size !== undefined && Number.isSafeInteger(size) ? { size } : {}),
        ...(plan.sha256 !== undefined ? { sha256: plan.sha256.toLowerCase() } : {}),
        ...(validator !== undefined ? { validator } : {}),
      };
      return { files: [file] };
    },

    async open(file, offset, signal, end): Promise<OpenedBody> {
      const headers: Record<string, string> = { ...base };
      if (offset > 0 || end !== undefined) {
        headers['range'] = `bytes=${offset}-${end !== undefined ? String(end - 1) : ''}`;
        // The server answers 200 with the whole (new) body when the object changed.
        if (file.validator !== undefined) headers['if-range'] = file.validator;
      }
      const res = await guardedFetch(signal)(plan.url, { headers });
      if (res.status === 206 && (offset > 0 || end !== undefined)) {
        const start = contentRangeStart(res.headers.get('content-range'));
        if (start !== offset) {
          await res.body?.cancel().catch(() => undefined);
          throw new FetchError(
            `asked for bytes from ${offset}, the server sent a range from ${String(start)}`,
          );
        }
        return { start: offset, body: nodeBody(res.body), partial: true };
      }
      if (res.status === 200) return { start: 0, body: nodeBody(res.body) };
      throw await statusError(res, plan.url);
    },
  };
}
