// The OCI source's credentials: the registry's entry of a docker config (the content of a
// kubernetes.io/dockerconfigjson Secret) and the WWW-Authenticate challenge a registry answers
// an unauthenticated request with. What is done with them is in oci.ts.
import { z } from 'zod';

import { FetchError, hasControlCharacter } from '../errors.js';

// --- docker config -------------------------------------------------------------------------

const authEntry = z.object({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
  registrytoken: z.string().optional(),
});
const dockerConfig = z.object({ auths: z.record(z.string(), authEntry) });

export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker login's identity token): exchanged at the realm. */
  identityToken?: string;
  /** A bearer token to send as it is. */
  registryToken?: string;
}

/** The hostname (with port) a docker config key stands for: "https://host/v1/" is "host". */
function configHost(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

/**
 * The credentials the docker config (a kubernetes.io/dockerconfigjson Secret's content) holds
 * for `host`, or undefined when it has no entry for it. Errors name the field, never a value.
 */
export function credentialsFor(configJson: string, host: string): RegistryCredentials | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(configJson);
  } catch {
    throw new FetchError('the docker config (.dockerconfigjson) is not JSON');
  }
  const parsed = dockerConfig.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FetchError(
      `the docker config (.dockerconfigjson) is not valid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`,
    );
  }
  const want = configHost(host);
  const key = Object.keys(parsed.data.auths).find((k) => configHost(k) === want);
  if (key === undefined) return undefined;
  const e = parsed.data.auths[key] ?? {};
  const creds: RegistryCredentials = {};
  if (e.auth !== undefined && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      throw new FetchError(
        `the docker config's auths.${key}.auth is not base64 of "user:password"`,
      );
    }
    creds.username = decoded.slice(0, colon);
    creds.password = decoded.slice(colon + 1);
  }
  if (e.username !== undefined && e.username !== '') creds.username = e.username;
  if (e.password !== undefined && e.password !== '') creds.password = e.password;
  if (e.identitytoken !== undefined && e.identitytoken !== '')
    creds.identityToken = e.identitytoken;
  if (e.registrytoken !== undefined && e.registrytoken !== '')
    creds.registryToken = e.registrytoken;
  for (const [field, value] of Object.entries(creds)) {
    if (typeof value === 'string' && hasControlCharacter(value)) {
      throw new FetchError(`the docker config's auths.${key} ${field} holds a control character`);
    }
  }
  return creds;
}

// --- WWW-Authenticate ----------------------------------------------------------------------

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** The first challenge of a WWW-Authenticate header: `Bearer realm="...",service="..."`. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (const p of (m[2] ?? '').matchAll(re)) {
    const name = (p[1] ?? '').toLowerCase();
    params[name] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}
