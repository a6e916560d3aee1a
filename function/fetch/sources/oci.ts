// An OCI registry (the distribution spec's pull API): a tag resolved to its manifest digest,
// then every blob by digest, each verified against it by the engine as it streams, with Range
// resume and parallel parts. Two layouts: an artifact (ORAS, ModelPack: one file per layer,
// named by its title annotation, or a directory ORAS archived) and an image (a modelcar: the
// layers are a filesystem, applied in order; one directory of it is staged).
//
// Auth as registries do it: anonymous first; on a 401 its WWW-Authenticate challenge, Basic
// (the docker config's user and password to the registry's own origin) or Bearer (a token from
// the realm the registry names, asked with those credentials or an identity token, then sent
// to the registry's own origin only). Redirects (blob storage, a CDN) are followed by hand and
// never carry an Authorization header.
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';

import { z } from 'zod';

import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../deadline.js';
import { FetchError, hasControlCharacter } from '../errors.js';
import { globFilter } from '../paths.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import {
  credentialsFor,
  parseChallenge,
  type Challenge,
  type RegistryCredentials,
} from './oci-auth.js';
import { unpackLayers } from './oci-layers.js';
import type { Listing, OpenedBody, RemoteFile, Source } from './types.js';
import { contentRangeStart, guardedFetch, nodeBody, statusError, where } from './web.js';

type OciPlan = Extract<FetchPlanSource, { type: 'oci' }>;

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociImageConfig: 'application/vnd.oci.image.config.v1+json',
  dockerImageConfig: 'application/vnd.docker.container.image.v1+json',
} as const;
const ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(
  ', ',
);
export const TITLE = 'org.opencontainers.image.title';
/** ORAS marks a layer that is a directory archived as tar+gzip with this annotation. */
export const ORAS_UNPACK = 'io.deis.oras.content.unpack';
/**
 * Layer media types that are tar archives of files by format, not by annotation: CNCF
 * ModelPack's (application/vnd.cncf.model.weight.v1.tar, ...+gzip) and KitOps ModelKits'
 * (application/vnd.kitops.modelkit.model.v1.tar+gzip). ORAS's default layer type
 * (application/vnd.oci.image.layer.v1.tar) is not among them: ORAS pushes plain files under it.
 */
export const ARCHIVE_LAYER =
  /^application\/vnd\.(cncf\.model|kitops\.modelkit)\.[a-z0-9.]+\.tar(\+gzip|\+zstd)?$/;
/** A manifest larger than this is refused (the distribution spec suggests 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Index entries followed at most, nested: an index of indexes of ... is refused past this. */
const MAX_INDEX_DEPTH = 2;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface OciRef {
  /** The host as written (docker.io, localhost:5000). */
  host: string;
  /** The host the API is served from (registry-1.docker.io for docker.io). */
  apiHost: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** Split a reference the API pattern admitted: host/repository[:tag][@sha256:...]. */
export function parseRef(ref: string): OciRef {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const named = at >= 0 ? ref.slice(0, at) : ref;
  const slash = named.indexOf('/');
  if (slash < 0) throw new FetchError(`the OCI reference ${ref} names no registry`);
  const host = named.slice(0, slash);
  const rest = named.slice(slash + 1);
  const colon = rest.lastIndexOf(':');
  const repository = colon >= 0 ? rest.slice(0, colon) : rest;
  const tag = colon >= 0 ? rest.slice(colon + 1) : undefined;
  if (digest !== undefined && !DIGEST.test(digest)) {
    throw new FetchError(`the OCI reference ${ref} has a digest that is not sha256:<64 hex>`);
  }
  if (repository === '' || (tag === undefined && digest === undefined)) {
    throw new FetchError(`the OCI reference ${ref} needs a repository and a tag or digest`);
  }
  const apiHost =
    host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
  return {
    host,
    apiHost,
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

// --- manifests -----------------------------------------------------------------------------

const descriptor = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.object({ os: z.string(), architecture: z.string() }).partial().optional(),
});
type Descriptor = z.infer<typeof descriptor>;
const imageManifest = z.object({
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor).default([]),
});
const imageIndex = z.object({ mediaType: z.string().optional(), manifests: z.array(descriptor) });

export interface OciLimits extends Partial<RequestLimits> {
  /** The fetch underneath (tests move tags or count requests here). */
  fetch?: typeof fetch;
  /** Bytes the unpacked tree may total when the plan gives no capacity. */
  maxUnpackedBytes?: number;
}

/** Digest hex of a descriptor, refusing algorithms the engine cannot verify. */
function digestHex(d: Descriptor, what: string): string {
  if (!DIGEST.test(d.digest)) {
    throw new FetchError(`${what} has digest ${d.digest}; only sha256 digests are verified`);
  }
  return d.digest.slice('sha256:'.length);
}

/** A listed file that is a blob to unpack; its path is never published. */
function blobPath(hex: string): string {
  return `.oci-blobs/sha256-${hex}`;
}

export function ociSource(plan: OciPlan, env: NodeJS.ProcessEnv, limits: OciLimits = {}): Source {
  const baseFetch = limits.fetch ?? globalThis.fetch;
  const requests: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...limits };
  const ref = parseRef(plan.ref);
  const scheme = plan.plainHTTP === true ? 'http' : 'https';
  const origin = `${scheme}://${ref.apiHost}`;
  const api = `${origin}/v2/${ref.repository}`;
  const scope = `repository:${ref.repository}:pull`;

  let creds: RegistryCredentials | undefined;
  if (plan.dockerConfigEnv !== undefined) {
    const config = env[plan.dockerConfigEnv];
    if (config === undefined || config === '') {
      throw new FetchError(
        `the plan names env ${plan.dockerConfigEnv} for the docker config, but it is not set`,
      );
    }
    creds = credentialsFor(config, ref.host);
    if (creds === undefined) {
      throw new FetchError(
        `the docker config (Secret key .dockerconfigjson) has no entry for registry ${ref.host}`,
      );
    }
  }
  // Values never to print; bearer tokens join as the realm hands them out.
  const secrets: string[] = [];
  const rawConfig = plan.dockerConfigEnv !== undefined ? env[plan.dockerConfigEnv] : undefined;
  if (rawConfig !== undefined && rawConfig !== '') secrets.push(rawConfig);
  for (const v of [creds?.password, creds?.identityToken, creds?.registryToken]) {
    if (v !== undefined) secrets.push(v);
  }
  if (creds?.username !== undefined && creds.password !== undefined) {
    secrets.push(Buffer.from(`${creds.username}:${creds.password}`).toString('base64'));
  }
  const basic =
    creds?.username !== undefined && creds.password !== undefined
      ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
      : undefined;
  /** What the registry's own origin gets: learned from its first 401. */
  let authorization: string | undefined =
    creds?.registryToken !== undefined ? `Bearer ${creds.registryToken}` : undefined;

  const keep = globFilter(plan.include, plan.exclude);
  let layers: { digest: string; hex: string; unpack: boolean; title?: string }[] = [];
  let layout: 'artifact' | 'image' = 'artifact';
  let resolved: string | undefined;
  /**
   * Whether blobs are fetched in parallel parts: when the registry hands them out from blob
   * storage (a redirect to another origin: S3, GCS, a CDN), which serves any range at once. A
   * registry that serves blobs itself gets one stream per blob, as `oras pull` and `crane` use:
   * some read a blob up to a range's start for every range (go-containerregistry's registry took
   * 1.0 s for a 16 MiB range at 224 MiB against 0.4 s at 0), so parts would cost more than they
   * bring. Learned in list() from the largest blob.
   */
  let fromStorage = false;

  /** A bearer token from the challenge's realm, for this repository's pull scope. */
  async function token(ch: Challenge, signal: AbortSignal): Promise<string> {
    const realm = ch.params['realm'];
    if (realm === undefined || !URL.canParse(realm)) {
      throw new FetchError(`the registry's Bearer challenge names no usable realm`);
    }
    const url = new URL(realm);
    if (url.protocol !== 'https:' && !(plan.plainHTTP === true && url.protocol === 'http:')) {
      throw new FetchError(
        `the registry's token realm ${where(realm)} is not https; refusing to send credentials there`,
      );
    }
    const service = ch.params['service'];
    const fetchToken = guardedFetch(signal, baseFetch, requests);
    let res: Response;
    if (creds?.identityToken !== undefined) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: 'modelcache',
        scope,
        ...(service !== undefined ? { service } : {}),
      });
      res = await fetchToken(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        redirect: 'error',
      });
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      url.searchParams.set('scope', scope);
      res = await fetchToken(url, {
        headers: basic !== undefined ? { authorization: basic } : {},
        redirect: 'error',
      });
    }
    if (!res.ok) {
      const err = await statusError(res, realm);
      throw new FetchError(
        `the token realm refused ${creds === undefined ? 'an anonymous' : 'the docker config'} pull of ${ref.repository}: ${err.message}`,
        undefined,
        err.permanent,
      );
    }
    const text = await res.text();
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new FetchError(`the token realm ${where(realm)} answered with no JSON`);
    }
    const t = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof t !== 'string' || t === '' || hasControlCharacter(t)) {
      throw new FetchError(`the token realm ${where(realm)} answered with no token`);
    }
    secrets.push(t);
    return t;
  }

  /** Answer a 401 from the registry: the next Authorization to send, or a final error. */
  async function authenticate(res: Response, signal: AbortSignal): Promise<void> {
    const ch = parseChallenge(res.headers.get('www-authenticate'));
    await res.body?.cancel().catch(() => undefined);
    if (ch?.scheme === 'bearer') {
      authorization = `Bearer ${await token(ch, signal)}`;
      return;
    }
    if (ch?.scheme === 'basic' && basic !== undefined) {
      authorization = basic;
      return;
    }
    throw FetchError.permanent(
      `HTTP 401 from ${where(res.url)}: the registry asks for ${ch?.scheme ?? 'unknown'} credentials${creds === undefined ? ' and the source has no secretRef' : ' the docker config cannot give'}`,
    );
  }

  /**
   * GET `url` on the registry: authorized on its own origin, a 401 answered once with a new
   * token, redirects followed by hand without the Authorization header.
   */
  async function get(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    metadata: boolean,
  ): Promise<Response> {
    const f = guardedFetch(signal, baseFetch, metadata ? requests : undefined);
    for (let attempt = 0; ; attempt++) {
      let at = url;
      let res: Response;
      for (let hops = 0; ; hops++) {
        const own = new URL(at).origin === origin;
        const h: Record<string, string> = { ...headers };
        if (own && authorization !== undefined) h['authorization'] = authorization;
        res = await f(at, { headers: h, redirect: 'manual' });
        if (res.status < 300 || res.status >= 400 || res.status === 304) break;
        const location = res.headers.get('location');
        await res.body?.cancel().catch(() => undefined);
        if (location === null || hops >= 10) {
          throw new FetchError(`HTTP ${res.status} from ${where(at)} with no usable redirect`);
        }
        const next = new URL(location, at);
        if (new URL(at).protocol === 'https:' && next.protocol !== 'https:') {
          throw new FetchError(
            `the registry redirects from https to ${where(next.href)}; refusing it`,
          );
        }
        at = next.href;
      }
      if (res.status === 401 && attempt === 0 && new URL(at).origin === origin) {
        await authenticate(res, signal);
        continue;
      }
      return res;
    }
  }

  /** A manifest by tag or digest: its bytes, verified against the digest when one is known. */
  async function manifest(
    reference: string,
    expected: string | undefined,
    signal: AbortSignal,
  ): Promise<{ digest: string; mediaType: string; json: unknown }> {
    const url = `${api}/manifests/${reference}`;
    const res = await get(url, { accept: ACCEPT }, signal, true);
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      throw FetchError.permanent(
        `${ref.host}/${ref.repository}:${reference} is not in the registry (HTTP 404)`,
      );
    }
    if (!res.ok) throw await statusError(res, url);
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > MAX_MANIFEST_BYTES) {
      await res.body?.cancel().catch(() => undefined);
      throw new FetchError(
        `the manifest of ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`,
      );
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_MANIFEST_BYTES) {
      throw new FetchError(
        `the manifest of ${reference} is larger than ${MAX_MANIFEST_BYTES} bytes`,
      );
    }
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (expected !== undefined && digest !== expected) {
      throw new FetchError(
        `the manifest the registry sent for ${reference} has digest ${digest}, not ${expected}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new FetchError(`the manifest of ${reference} is not JSON`);
    }
    const declared = (json as { mediaType?: unknown }).mediaType;
    const mediaType =
      typeof declared === 'string'
        ? declared
        : ((res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '');
    return { digest, mediaType, json };
  }

  /** From an index, the manifest to stage: linux/amd64, else the one platform-less or only entry. */
  function pick(entries: Descriptor[], digest: string): Descriptor {
    const manifests = entries.filter(
      (d) =>
        (d.mediaType === MEDIA.ociManifest || d.mediaType === MEDIA.dockerManifest) &&
        d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest',
    );
    const chosen =
      manifests.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64') ??
      (manifests.length === 1 ? manifests[0] : undefined) ??
      manifests.find((d) => d.platform === undefined);
    if (chosen === undefined) {
      throw new FetchError(
        `the index ${digest} lists ${manifests.length} manifests and none for linux/amd64; name one by digest`,
      );
    }
    return chosen;
  }

  return {
    describe: `oci://${plan.ref} from ${where(origin)}`,
    secrets,
    get ranges() {
      return fromStorage;
    },

    async list(signal): Promise<Listing> {
      // The tag is resolved once: from here on every request names a digest, so a tag moved
      // while the blobs download cannot mix two versions.
      let top = await manifest(ref.digest ?? ref.tag ?? '', ref.digest, signal);
      resolved = top.digest;
      for (
        let depth = 0;
        top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList;
        depth++
      ) {
        if (depth >= MAX_INDEX_DEPTH)
          throw new FetchError(`indexes nest deeper than ${MAX_INDEX_DEPTH}`);
        const index = imageIndex.safeParse(top.json);
        if (!index.success)
          throw new FetchError(`the index ${top.digest} is not a valid image index`);
        const chosen = pick(index.data.manifests, top.digest);
        top = await manifest(chosen.digest, chosen.digest, signal);
      }
      const parsed = imageManifest.safeParse(top.json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new FetchError(
          `the manifest ${top.digest} is not a valid image manifest: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`,
        );
      }
      const m = parsed.data;
      const configType = m.config.mediaType;
      layout =
        plan.layout ??
        (m.artifactType === undefined &&
        (configType === MEDIA.ociImageConfig || configType === MEDIA.dockerImageConfig)
          ? 'image'
          : 'artifact');
      const files: RemoteFile[] = [];
      const seen = new Set<string>();
      layers = [];
      for (const [i, d] of m.layers.entries()) {
        const what = `layer ${i} (${d.digest})`;
        const hex = digestHex(d, what);
        const title = d.annotations?.[TITLE];
        const unpack =
          layout === 'image' ||
          d.annotations?.[ORAS_UNPACK] === 'true' ||
          ARCHIVE_LAYER.test(d.mediaType);
        if (layout === 'artifact' && (title === undefined || title === '')) {
          throw new FetchError(
            `${what} has no ${TITLE} annotation, so it has no file name; set layout: image if the artifact is a container image`,
          );
        }
        layers.push({ digest: d.digest, hex, unpack, ...(title !== undefined ? { title } : {}) });
        if (!unpack && title !== undefined && !keep(title)) continue;
        const path = unpack ? blobPath(hex) : (title as string);
        if (unpack && seen.has(path)) continue; // the same layer twice is fetched once
        seen.add(path);
        files.push({
          path,
          size: d.size,
          sha256: hex,
          validator: d.digest,
          ...(unpack ? { archive: true } : {}),
        });
      }
      const largest = files.reduce<RemoteFile | undefined>(
        (a, f) => ((f.size ?? 0) > (a?.size ?? -1) ? f : a),
        undefined,
      );
      if (largest?.validator !== undefined && (largest.size ?? 0) > 0) {
        const probe = await get(
          `${api}/blobs/${largest.validator}`,
          { range: 'bytes=0-0' },
          signal,
          true,
        );
        await probe.body?.cancel().catch(() => undefined);
        if (!probe.ok) throw await statusError(probe, `${api}/blobs/${largest.validator}`);
        fromStorage = new URL(probe.url || api).origin !== origin;
      }
      return { resolvedRevision: resolved, files };
    },

    async open(file, offset, signal, end): Promise<OpenedBody> {
      if (file.validator === undefined) throw new Error('open() before list()');
      const url = `${api}/blobs/${file.validator}`;
      const headers: Record<string, string> = { 'accept-encoding': 'identity' };
      // A closed range: some registries (go-containerregistry's) refuse "bytes=N-" with a 416.
      const last = end ?? file.size;
      if (offset > 0 || end !== undefined) {
        headers['range'] = `bytes=${offset}-${last !== undefined ? String(last - 1) : ''}`;
      }
      const res = await get(url, headers, signal, false);
      if (res.status === 206) {
        const start = contentRangeStart(res.headers.get('content-range'));
        if (start !== offset) {
          await res.body?.cancel().catch(() => undefined);
          throw new FetchError(
            `asked for bytes from ${offset}, the registry sent a range from ${String(start)}`,
          );
        }
        return { start: offset, body: nodeBody(res.body), partial: true };
      }
      if (res.status === 200) return { start: 0, body: nodeBody(res.body) };
      throw await statusError(res, url);
    },

    async assemble(downloaded, workDir, opts) {
      const byPath = new Map(downloaded.map((d) => [d.path, d.file]));
      const blob = (hex: string): string => {
        const f = byPath.get(blobPath(hex));
        if (f === undefined) throw new Error(`blob ${hex} was not downloaded`);
        return f;
      };
      const maxBytes = opts.maxBytes ?? limits.maxUnpackedBytes ?? Number.MAX_SAFE_INTEGER;
      if (layout === 'image') {
        const dir = (plan.directory ?? '/models').replace(/^\/+|\/+$/g, '');
        const tree = await unpackLayers(
          layers.map((l) => ({ digest: l.digest, file: blob(l.hex) })),
          workDir,
          { dir, maxBytes, keep, signal: opts.signal },
        );
        if (tree.length === 0) {
          throw new FetchError(
            `the image ${resolved ?? plan.ref} has no files under ${plan.directory ?? '/models'}${plan.include !== undefined || plan.exclude !== undefined ? ' that include/exclude keep' : ''}; set directory to where its model is`,
          );
        }
        return tree;
      }
      // An artifact: each archived directory unpacked at the volume root, on its own.
      const out = [];
      let total = 0;
      for (const [i, l] of layers.entries()) {
        if (!l.unpack) continue;
        const sub = `${workDir}/${String(i)}`;
        await rm(sub, { recursive: true, force: true });
        await mkdir(sub);
        const tree = await unpackLayers([{ digest: l.digest, file: blob(l.hex) }], sub, {
          dir: '',
          maxBytes: maxBytes - total,
          keep,
          signal: opts.signal,
        });
        for (const t of tree) total += t.size;
        out.push(...tree);
      }
      return out;
    },
  };
}
