// Errors of the fetch program and how they are classified for retries.
import { redactUrls } from '../contract/redact.js';
import { DeadlineError, StallError } from './deadline.js';

/** A failure the program reports as its final line: names the file (when there is one) and the cause. */
export class FetchError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    /**
     * True when the next pod of the Job would meet the same answer (a file the source does not
     * have, a refused credential, a plan the program cannot read, a volume too small): the
     * program exits with EXIT_PERMANENT and the Job's podFailurePolicy fails it at once.
     */
    readonly permanent = false,
  ) {
    super(message);
    this.name = 'FetchError';
  }

  /** A failure no retry can mend; see `permanent`. */
  static permanent(message: string, file?: string): FetchError {
    return new FetchError(message, file, true);
  }

  /** The one line the program ends with and writes to the termination log. */
  line(): string {
    return this.file === undefined ? this.message : `${this.file}: ${this.message}`;
  }
}

/** A response status that may succeed when asked again (429, 408, 5xx). */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly where: string,
    /** Milliseconds the server asked us to wait (Retry-After), when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(`HTTP ${status} from ${where}`);
    this.name = 'HttpStatusError';
  }
}

/** The body ended before the size the source announced. */
export class TruncatedError extends Error {
  constructor(got: number, expected: number) {
    super(`truncated: the body ended at byte ${got} of ${expected}`);
    this.name = 'TruncatedError';
  }
}

/** The source object changed while it was being fetched (its validator no longer matches). */
export class ChangedError extends Error {
  constructor(where: string) {
    super(`${where} changed during the download (validator mismatch)`);
    this.name = 'ChangedError';
  }
}

/**
 * An answer that will be the same on the next pod: the source has no such thing (404, 410) or
 * refuses this credential (401, 403). Other 4xx (a range the server mishandles, 400 from a
 * confused proxy) may not be, so a Job's next pod still gets its chance.
 */
export function statusPermanent(status: number): boolean {
  return status === 401 || status === 403 || status === 404 || status === 410;
}

/**
 * Whether an error, or one it wraps, is permanent: a FetchError marked so, or a client
 * library's answer with a permanent status (the hub client's HubApiError carries statusCode
 * and url; the AWS SDK's service errors $metadata.httpStatusCode).
 */
export function isPermanent(err: unknown, depth = 0): boolean {
  if (depth > 5 || err === null || typeof err !== 'object') return false;
  if (err instanceof FetchError) return err.permanent;
  const sdk = field(field(err, '$metadata'), 'httpStatusCode');
  if (typeof sdk === 'number') return statusPermanent(sdk);
  const hub = field(err, 'statusCode');
  if (typeof hub === 'number' && typeof field(err, 'url') === 'string') return statusPermanent(hub);
  return isPermanent(field(err, 'cause'), depth + 1);
}

export function statusRetryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unparsable. */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

function field(err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null
    ? (err as Record<string, unknown>)[name]
    : undefined;
}

export interface Retry {
  retry: boolean;
  /** Server-requested wait, honoured instead of the computed backoff when longer. */
  afterMs?: number;
}

/** Whether a failure is worth another attempt: transient statuses, resets, stalls, truncation. */
export function classify(err: unknown, depth = 0): Retry {
  if (depth > 5) return { retry: false };
  if (err instanceof HttpStatusError) {
    return statusRetryable(err.status)
      ? { retry: true, ...(err.retryAfterMs !== undefined ? { afterMs: err.retryAfterMs } : {}) }
      : { retry: false };
  }
  if (err instanceof StallError || err instanceof DeadlineError || err instanceof TruncatedError) {
    return { retry: true };
  }
  if (err instanceof FetchError || err instanceof ChangedError) return { retry: false };
  const code = field(err, 'code');
  if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return { retry: true };
  // AWS SDK v3 service errors carry the HTTP status in $metadata.
  const metadata = field(err, '$metadata');
  const status = field(metadata, 'httpStatusCode');
  if (typeof status === 'number' && status >= 400) {
    if (!statusRetryable(status)) return { retry: false };
    const response = field(err, '$response');
    const headers = field(response, 'headers') as Record<string, string> | undefined;
    const after = parseRetryAfter(headers?.['retry-after']);
    return { retry: true, ...(after !== undefined ? { afterMs: after } : {}) };
  }
  const name = field(err, 'name');
  if (name === 'TimeoutError' || name === 'RequestTimeout' || name === 'AbortError') {
    return { retry: true };
  }
  // undici: `fetch failed` and `terminated` wrap the socket error in `cause`.
  const message = field(err, 'message');
  if (err instanceof TypeError && (message === 'terminated' || message === 'fetch failed')) {
    return { retry: true };
  }
  const cause = field(err, 'cause');
  return cause !== undefined ? classify(cause, depth + 1) : { retry: false };
}

/**
 * A short, single-line description of a failure, with the socket-level cause when there is
 * one. Secrets are redacted before whitespace is collapsed: a secret holding a line break no
 * longer matches itself once the break became a space.
 */
export function describe(err: unknown, secrets: readonly string[] = []): string {
  let text: string;
  if (!(err instanceof Error)) text = String(err);
  else {
    text = err.message;
    const cause = field(err, 'cause');
    if (cause instanceof Error && !text.includes(cause.message)) {
      const code = field(cause, 'code');
      text += ` (${typeof code === 'string' ? `${code}: ` : ''}${cause.message})`;
    } else {
      const code = field(err, 'code');
      if (typeof code === 'string' && !text.includes(code)) text = `${code}: ${text}`;
    }
  }
  return redact(text, secrets).replace(/\s+/g, ' ').trim();
}

/** Secrets shorter than this are not redacted: they would blank out ordinary words. */
const MIN_SECRET = 4;

/**
 * Every form a secret may take by the time it is in a message: as is, trimmed, with its
 * whitespace collapsed (describe, the final line), each of its lines alone, base64 (an
 * encoded header echoed back) and JSON-escaped (a log line). Longest first, so a form
 * containing another is replaced whole.
 */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>();
  const add = (form: string): void => {
    if (form.length >= MIN_SECRET) forms.add(form);
  };
  add(secret);
  add(secret.trim());
  add(secret.replace(/\s+/g, ' ').trim());
  for (const line of secret.split(/[\r\n]+/)) add(line.trim());
  const b64 = Buffer.from(secret).toString('base64');
  add(b64);
  add(b64.replace(/=+$/, ''));
  add(JSON.stringify(secret).slice(1, -1));
  return [...forms].sort((a, b) => b.length - a.length);
}

/** Replace every form of every known secret (tokens, keys read from the env) with '***'. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = redactUrls(text);
  const forms = secrets.flatMap(secretForms).sort((a, b) => b.length - a.length);
  for (const f of forms) out = out.split(f).join('***');
  return out;
}

/** Longest server-chosen phrase (an HTTP reason phrase) a message shows. */
export const MAX_PHRASE = 64;

/**
 * Text a server chose, fit to be shown: printable ASCII only (no escape sequences, no line
 * breaks), whitespace collapsed, at most MAX_PHRASE characters.
 */
export function serverPhrase(text: string): string {
  const clean = text
    .replace(/[^\x20-\x7e]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length <= MAX_PHRASE ? clean : `${clean.slice(0, MAX_PHRASE)}…`;
}

/** C0 controls and DEL: line breaks, NUL, escape sequences. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/g;

/** Control characters (CR, LF, NUL…) inside a credential: no header or signature can carry them. */
export function hasControlCharacter(value: string): boolean {
  return value.search(CONTROL) >= 0;
}

/** `text` with every control character removed. */
export function withoutControlCharacters(text: string): string {
  return text.replace(CONTROL, '');
}
