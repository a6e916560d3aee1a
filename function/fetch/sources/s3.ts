// An S3 prefix (or an S3-compatible store) through the AWS SDK: paginated listing, full
// or ranged GETs pinned to the listed ETag, the stored SHA-256 checksum where there is one.
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type HeadObjectCommandOutput,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';

import {
  DEFAULT_REQUEST_LIMITS,
  DeadlineError,
  StallError,
  Watch,
  watched,
  type RequestLimits,
} from '../deadline.js';
import { redactUrls } from '../../contract/redact.js';
import { ChangedError, FetchError, hasControlCharacter } from '../errors.js';
import type { FetchPlanSource } from '../../contract/plan.js';
import type { Listing, OpenedBody, RemoteFile, Source } from './types.js';

type S3Plan = Extract<FetchPlanSource, { type: 's3' }>;

/** Objects whose checksum is looked up at once; HEADs are small but not free. */
const HEAD_CONCURRENCY = 16;

interface EnvCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

function credentialsFrom(env: NodeJS.ProcessEnv): EnvCredentials {
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if (!accessKeyId || !secretAccessKey) {
    throw FetchError.permanent(
      'the plan takes S3 credentials from the env, but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set',
    );
  }
  const sessionToken = env['AWS_SESSION_TOKEN'];
  for (const [name, value] of [
    ['AWS_ACCESS_KEY_ID', accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', secretAccessKey],
    ['AWS_SESSION_TOKEN', sessionToken ?? ''],
  ] as const) {
    if (hasControlCharacter(value.trim())) {
      throw FetchError.permanent(
        `env ${name} (the S3 credentials) contains a control character (a line break?) inside it; the Secret must hold it alone, on one line`,
      );
    }
  }
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** Base64 SHA-256 of the whole object as lowercase hex; composite (multipart) checksums are not. */
function fullObjectSha256(b64: string | undefined, type: string | undefined): string | undefined {
  if (!b64 || type === 'COMPOSITE' || b64.includes('-')) return undefined;
  const hex = Buffer.from(b64, 'base64').toString('hex');
  return hex.length === 64 ? hex : undefined;
}

/** The SDK's socket inactivity timeout, said the way every other stall is. */
function socketStall(err: unknown, limits: RequestLimits): unknown {
  const e = err as { name?: unknown; message?: unknown };
  return e.name === 'TimeoutError' && typeof e.message === 'string' && e.message.includes('socket')
    ? StallError.silent(limits)
    : err;
}

export function s3Source(
  plan: S3Plan,
  env: NodeJS.ProcessEnv,
  limits: RequestLimits = DEFAULT_REQUEST_LIMITS,
): Source {
  const credentials = plan.credentialsFromEnv ? credentialsFrom(env) : undefined;
  const client = new S3Client({
    region: plan.region ?? env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    ...(plan.endpoint !== undefined ? { endpoint: plan.endpoint, forcePathStyle: true } : {}),
    ...(credentials !== undefined ? { credentials } : {}),
    // The engine owns retries (one policy, Retry-After honoured, progress-aware) and
    // verifies the SHA-256 itself over the whole file, ranges included.
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A socket idle for the stall timeout is dropped, downloads included; a metadata
    // request also has the request deadline (metered below), a download the engine's rate.
    requestHandler: { connectionTimeout: 30_000, socketTimeout: limits.stallTimeoutMs },
  });
  /** A metadata command (List, HEAD) under the request deadline. */
  async function metadata<T>(
    command: ListObjectsV2Command | HeadObjectCommand,
    signal: AbortSignal,
  ): Promise<T> {
    const watch = new Watch(signal);
    watch.after(limits.requestTimeoutMs, () => new DeadlineError(limits));
    try {
      return (await client.send(command as HeadObjectCommand, {
        abortSignal: watch.signal,
      })) as T;
    } catch (err) {
      throw watched(watch, socketStall(err, limits));
    } finally {
      watch.dispose();
    }
  }
  const secrets = credentials
    ? [credentials.secretAccessKey, credentials.sessionToken ?? ''].filter((s) => s !== '')
    : [];
  // 'models/llama' stages the "directory" models/llama/, never models/llama-2/.
  const dirPrefix =
    plan.prefix === '' || plan.prefix.endsWith('/') ? plan.prefix : `${plan.prefix}/`;
  const keys = new Map<string, string>();

  async function checksum(key: string, signal: AbortSignal): Promise<string | undefined> {
    const head = await metadata<HeadObjectCommandOutput>(
      new HeadObjectCommand({ Bucket: plan.bucket, Key: key, ChecksumMode: 'ENABLED' }),
      signal,
    );
    return fullObjectSha256(head.ChecksumSHA256, head.ChecksumType);
  }

  return {
    describe: `s3://${plan.bucket}/${plan.prefix}${plan.endpoint !== undefined ? ` at ${redactUrls(plan.endpoint)}` : ''}`,
    secrets,
    ranges: true,

    async list(signal): Promise<Listing> {
      const objects: { key: string; path: string; size: number; etag?: string; sha: boolean }[] =
        [];
      let token: string | undefined;
      do {
        const page = await metadata<ListObjectsV2CommandOutput>(
          new ListObjectsV2Command({
            Bucket: plan.bucket,
            Prefix: dirPrefix,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
          signal,
        );
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined || o.Key.endsWith('/')) continue; // "directory" markers
          objects.push({
            key: o.Key,
            path: o.Key.slice(dirPrefix.length),
            size: o.Size ?? 0,
            ...(o.ETag !== undefined ? { etag: o.ETag } : {}),
            sha: o.ChecksumAlgorithm?.includes('SHA256') ?? false,
          });
        }
      } while (token !== undefined);
      if (objects.length === 0 && plan.prefix !== '' && !plan.prefix.endsWith('/')) {
        // The prefix names one object: stage it under its base name.
        const head = await metadata<HeadObjectCommandOutput>(
          new HeadObjectCommand({ Bucket: plan.bucket, Key: plan.prefix, ChecksumMode: 'ENABLED' }),
          signal,
        );
        const path = plan.prefix.slice(plan.prefix.lastIndexOf('/') + 1);
        keys.set(path, plan.prefix);
        const sha256 = fullObjectSha256(head.ChecksumSHA256, head.ChecksumType);
        return {
          files: [
            {
              path,
              size: head.ContentLength ?? 0,
              ...(sha256 !== undefined ? { sha256 } : {}),
              ...(head.ETag !== undefined ? { validator: head.ETag } : {}),
            },
          ],
        };
      }
      const files: RemoteFile[] = new Array<RemoteFile>(objects.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < objects.length) {
          const i = next++;
          const o = objects[i];
          if (o === undefined) break;
          keys.set(o.path, o.key);
          const sha256 = o.sha ? await checksum(o.key, signal) : undefined;
          files[i] = {
            path: o.path,
            size: o.size,
            ...(sha256 !== undefined ? { sha256 } : {}),
            ...(o.etag !== undefined ? { validator: o.etag } : {}),
          };
        }
      };
      await Promise.all(Array.from({ length: HEAD_CONCURRENCY }, worker));
      return { files };
    },

    async open(file, offset, signal, end): Promise<OpenedBody> {
      const key = keys.get(file.path);
      if (key === undefined) throw new Error(`open() of ${file.path} before list()`);
      try {
        const res = await client.send(
          new GetObjectCommand({
            Bucket: plan.bucket,
            Key: key,
            ...(offset > 0 || end !== undefined
              ? { Range: `bytes=${offset}-${end !== undefined ? String(end - 1) : ''}` }
              : {}),
            // Every range comes from the object version that was listed.
            ...(file.validator !== undefined ? { IfMatch: file.validator } : {}),
          }),
          { abortSignal: signal },
        );
        const body = res.Body as Readable | undefined;
        const partial = res.ContentRange !== undefined;
        const start = offset > 0 && !partial ? 0 : offset;
        return { start, body: body ?? Readable.from([]), partial };
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata
          ?.httpStatusCode;
        if (status === 412) throw new ChangedError(`s3://${plan.bucket}/${key}`);
        if (status === 403 || status === 404) {
          throw FetchError.permanent(`HTTP ${status} from s3://${plan.bucket}/${key}`);
        }
        throw socketStall(err, limits);
      }
    },
  };
}
