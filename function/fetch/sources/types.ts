// The one interface every source implements.

/** A file the source will deliver, as listed before any byte moves. */
export interface RemoteFile {
  /** Relative path in the volume; checked by the engine before anything is written. */
  path: string;
  /** Size in bytes when the source states it (used for the capacity check and truncation). */
  size?: number;
  /** Lowercase hex sha256 the bytes must have, when the source publishes one. */
  sha256?: string;
  /** Git blob id (sha1 of "blob <size>\0" + bytes) of a non-LFS Hugging Face file. */
  gitBlobSha1?: string;
  /** Opaque version of the remote object (ETag, commit): a partial file resumes only against the same one. */
  validator?: string;
  /**
   * An archive the source's assemble() turns into files (an OCI layer): downloaded and
   * verified like any file, never published under its own path nor kept from the volume.
   */
  archive?: boolean;
}

/** A listed archive, downloaded and verified. */
export interface DownloadedArchive {
  path: string;
  /** Its bytes on disk, in staging. */
  file: string;
}

/** A file assemble() made, ready to be renamed into place. */
export interface AssembledFile {
  /** Relative path in the volume. */
  path: string;
  /** Where it is now, under the work directory. */
  file: string;
  size: number;
  /** Computed while it was written. */
  sha256: string;
}

export interface Listing {
  /** Commit / version the source resolved to; undefined when the engine derives one from the digests. */
  resolvedRevision?: string;
  files: RemoteFile[];
}

export interface OpenedBody {
  /** Byte offset the body starts at: the requested one, or 0 when the server ignored the range. */
  start: number;
  body: AsyncIterable<Uint8Array>;
  /** True when the server answered with the range asked for (206), not the whole body. */
  partial?: boolean;
}

export interface Source {
  /** One line for logs, never containing a secret. */
  readonly describe: string;
  /** Values that must never appear in a log, error or annotation (tokens, keys). */
  readonly secrets: readonly string[];
  /** Resolve the revision and list every file with its size and digest where known. */
  list(signal: AbortSignal): Promise<Listing>;
  /**
   * Whether open() honours an `end`: the engine then fetches parts of one file over
   * several connections at once.
   */
  readonly ranges?: boolean;
  /**
   * Stream `file` from byte `offset`, up to `end` (exclusive) when given; errors are
   * classified by the engine for retries.
   */
  open(file: RemoteFile, offset: number, signal: AbortSignal, end?: number): Promise<OpenedBody>;
  /**
   * Turn the listed archives, once all are downloaded and verified, into the files to publish,
   * written under `workDir` (empty, on the volume); files not listed as archives are published
   * as they are. `maxBytes` bounds what it writes (the volume's size, when known).
   */
  assemble?(
    archives: readonly DownloadedArchive[],
    workDir: string,
    opts: { maxBytes?: number; signal: AbortSignal },
  ): Promise<AssembledFile[]>;
}
