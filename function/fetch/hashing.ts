// The digests a file is verified by, computed as its bytes arrive, and the disk writes.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

import type { RemoteFile } from './sources/index.js';

export class Hashes {
  readonly sha256: Hash = createHash('sha256');
  readonly git: Hash | undefined;
  constructor(file: RemoteFile) {
    if (file.gitBlobSha1 !== undefined && file.size !== undefined) {
      this.git = createHash('sha1').update(`blob ${file.size}\0`);
    }
  }
  update(chunk: Uint8Array): void {
    this.sha256.update(chunk);
    this.git?.update(chunk);
  }
}

/** Hash bytes [start, end) already on disk (local reads are cheap next to the network). */
export async function rehash(
  path: string,
  start: number,
  end: number,
  hashes: Hashes,
): Promise<void> {
  if (end <= start) return;
  for await (const chunk of createReadStream(path, { start, end: end - 1 })) {
    hashes.update(chunk as Buffer);
  }
}

export async function writeAll(fh: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  // writev: no copy into one buffer; a short write (rare on regular files) finishes plainly.
  const { bytesWritten } = await fh.writev(chunks, position);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(chunks).subarray(bytesWritten);
  let done = 0;
  while (done < rest.length) {
    const r = await fh.write(rest, done, rest.length - done, position + bytesWritten + done);
    done += r.bytesWritten;
  }
}
