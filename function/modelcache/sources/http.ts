import { ENV_HTTP_TOKEN } from '../../constants.js';
import { redactUrls } from '../../contract/redact.js';
import { tokenCredentials } from './token.js';
import type { HttpSpec, SourceContext, SourceParts } from './types.js';

/** The file name an HTTP download lands under when spec.path is not given. */
export function httpFileName(url: string): string {
  const path = url.replace(/[?#].*$/, '').replace(/^https?:\/\/[^/]*/, '');
  const last = path
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..')
    .pop();
  return last !== undefined ? decodeURIComponentSafe(last) : 'download';
}

function decodeURIComponentSafe(s: string): string {
  try {
    const decoded = decodeURIComponent(s);
    return decoded.includes('/') || decoded === '..' || decoded === '.' ? s : decoded;
  } catch {
    return s;
  }
}

export function httpParts(spec: HttpSpec, ctx: SourceContext): SourceParts {
  const path = spec.path ?? httpFileName(spec.url);
  return {
    identity: { url: spec.url, sha256: spec.sha256, path },
    summary: redactUrls(spec.url),
    plan: {
      type: 'http',
      url: spec.url,
      ...(spec.sha256 !== undefined ? { sha256: spec.sha256 } : {}),
      path,
      ...(spec.secretRef ? { tokenEnv: ENV_HTTP_TOKEN } : {}),
    },
    credentials: tokenCredentials(spec.secretRef, ENV_HTTP_TOKEN, ctx),
    files: undefined,
  };
}
