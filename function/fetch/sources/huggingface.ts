// A Hugging Face repo (or a mirror) through @huggingface/hub: revision → commit, recursive
// paginated tree with sizes and LFS sha256, include/exclude globs, ranged downloads.
import { downloadFile, listFiles, modelInfo } from '@huggingface/hub';

import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../deadline.js';
import { FetchError, statusPermanent } from '../errors.js';
import { globFilter } from '../paths.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Listing, OpenedBody, RemoteFile, Source } from './types.js';
import { contentRangeStart, guardedFetch, nodeBody, tokenFromEnv, where } from './web.js';

type HuggingFacePlan = Extract<FetchPlanSource, { type: 'huggingFace' }>;

export const HF_DEFAULT_ENDPOINT = 'https://huggingface.co';

const COMMIT = /^[0-9a-f]{40}$/;

/** Tree pages one listing may fetch: 10 million entries at the hub's 1000 a page. */
export const MAX_TREE_PAGES = 10_000;

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export interface HubLimits extends Partial<RequestLimits> {
  maxTreePages?: number;
  /** The fetch underneath (tests put a TLS terminator here). */
  fetch?: typeof fetch;
}

export function huggingFaceSource(
  plan: HuggingFacePlan,
  env: NodeJS.ProcessEnv,
  limits: HubLimits = {},
): Source {
  const baseFetch = limits.fetch ?? globalThis.fetch;
  const requests: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
  const token = tokenFromEnv(plan.tokenEnv, env);
  const hubUrl = (plan.endpoint ?? HF_DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const hub = new URL(hubUrl);
  const secure = hub.protocol === 'https:';
  // The token goes on as a header of our own fetch rather than through the library's
  // accessToken, which insists on the public hub's "hf_" prefix that mirrors do not use.
  // Only to the endpoint's own origin: the library follows whatever URL the hub's tree
  // pagination (Link: rel="next") names. Node's fetch drops it on a redirect to another
  // origin (the CDN's signed URLs). An https endpoint is never left for plain http.
  const withToken =
    (base: typeof fetch): typeof fetch =>
    (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (secure && url.protocol !== 'https:') {
        throw new FetchError(
          `the hub's tree pagination leads from https to ${where(url.href)}; refusing it`,
        );
      }
      if (token === undefined || url.origin !== hub.origin) return base(input, init);
      const headers = new Headers(init?.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
      return base(input, { ...init, headers });
    };
  const maxPages = limits.maxTreePages ?? MAX_TREE_PAGES;
  /** One listing's tree pages: each URL once, at most maxPages of them. */
  const paged = (base: typeof fetch): typeof fetch => {
    const seen = new Set<string>();
    return (input, init) => {
      const href = input instanceof Request ? input.url : String(input);
      if (seen.has(href)) {
        throw new FetchError(
          `the hub's tree pagination repeats a page (${where(href)}); refusing to loop`,
        );
      }
      if (seen.size >= maxPages) {
        throw new FetchError(
          `the hub's tree has more than ${maxPages} pages; refusing to list further`,
        );
      }
      seen.add(href);
      return base(input, init);
    };
  };
  const keep = globFilter(plan.include, plan.exclude);
  let commit: string | undefined;

  return {
    describe: `hf://${plan.repo}@${plan.revision} from ${where(hubUrl)}`,
    secrets: token !== undefined ? [token] : [],
    ranges: true,

    async list(signal): Promise<Listing> {
      const fetch = guardedFetch(signal, withToken(baseFetch), requests);
      const info = await modelInfo({
        name: plan.repo,
        revision: plan.revision,
        hubUrl,
        fetch,
        additionalFields: ['sha'],
      });
      const sha = info.sha;
      if (typeof sha !== 'string' || !COMMIT.test(sha)) {
        throw new FetchError(
          `the hub did not resolve revision ${plan.revision} of ${plan.repo} to a commit`,
        );
      }
      commit = sha;
      const files: RemoteFile[] = [];
      for await (const entry of listFiles({
        repo: { type: 'model', name: plan.repo },
        revision: sha,
        recursive: true,
        hubUrl,
        fetch: paged(fetch),
      })) {
        if (entry.type !== 'file' || !keep(entry.path)) continue;
        const lfs = entry.lfs;
        files.push({
          path: entry.path,
          size: lfs?.size ?? entry.size,
          // LFS files carry their sha256; regular (git) files their git blob sha1.
          ...(lfs ? { sha256: lfs.oid.toLowerCase() } : {}),
          ...(!lfs && entry.oid !== undefined && /^[0-9a-f]{40}$/.test(entry.oid)
            ? { gitBlobSha1: entry.oid }
            : {}),
          validator: `${sha}:${lfs?.oid ?? entry.oid ?? ''}`,
        });
      }
      return { resolvedRevision: sha, files };
    },

    async open(file, offset, signal, end): Promise<OpenedBody> {
      if (commit === undefined) throw new Error('open() before list()');
      const url = `${hubUrl}/${plan.repo}/resolve/${commit}/${encodePath(file.path)}`;
      // WebBlob reports failures as bare strings; the wrapper keeps the real response or
      // error so the engine can classify it (Retry-After, resets) and see ignored ranges.
      let settle!: { ok: (r: Response) => void; fail: (e: unknown) => void };
      const responded = new Promise<Response>((ok, fail) => (settle = { ok, fail }));
      const guarded = guardedFetch(signal, withToken(baseFetch));
      const observed: typeof fetch = async (input, init) => {
        try {
          const res = await guarded(input, init);
          settle.ok(res);
          return res;
        } catch (err) {
          settle.fail(err);
          throw err;
        }
      };
      const size = file.size ?? 0;
      const blob = await downloadFile({
        repo: { type: 'model', name: plan.repo },
        path: file.path,
        revision: commit,
        hubUrl,
        fetch: observed,
        xet: false,
        downloadInfo: { size, etag: file.validator ?? '', url },
      });
      if (blob === null) throw FetchError.permanent(`not found in ${plan.repo}@${commit}`);
      const stream = blob.slice(offset, end ?? size).stream();
      const res = await responded;
      if (!res.ok) {
        await stream.cancel().catch(() => undefined);
        // The CDN's signed URLs expire (403) while the next pod would be given a fresh one:
        // only the hub's own answer is taken as final.
        const fromHub = new URL(res.url || url).origin === hub.origin;
        throw new FetchError(
          `HTTP ${res.status} from ${where(res.url || url)}`,
          undefined,
          fromHub && statusPermanent(res.status),
        );
      }
      let start = 0;
      if (res.status === 206) {
        start = contentRangeStart(res.headers.get('content-range')) ?? -1;
        if (start !== offset) {
          await stream.cancel().catch(() => undefined);
          throw new FetchError(
            `asked for bytes from ${offset}, the hub sent a range from ${start}`,
          );
        }
      }
      return { start, body: nodeBody(stream), partial: res.status === 206 };
    },
  };
}
