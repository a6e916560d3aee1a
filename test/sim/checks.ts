// Data-safety checks on a volume: what the fetch program staged against what the source
// serves. A volume "holds" an identity when its completion marker names it, vouches for the
// manifest, and every file the manifest lists is at the volume root with that size and
// sha256; with an expectation, the staged set must also be exactly the source's files,
// byte for byte. Bytes that should be there and are not (or differ) are "lost".
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ExpectedFile {
  sha256: string;
  size: number;
}

export type Expected = Map<string, ExpectedFile>;

export interface VolumeReport {
  ok: boolean;
  problems: string[];
  /** Bytes of expected files missing or corrupt. */
  bytesLost: number;
  /** Bytes verified equal to the source. */
  bytesVerified: number;
  identity: string | undefined;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function readJson(path: string): { value: Record<string, unknown>; raw: string } | undefined {
  try {
    const raw = readFileSync(path, 'utf8');
    return { value: JSON.parse(raw) as Record<string, unknown>, raw };
  } catch {
    return undefined;
  }
}

export function expectedOf(files: { path: string; bytes: Buffer }[]): Expected {
  return new Map(
    files.map((f) => [
      f.path,
      { sha256: createHash('sha256').update(f.bytes).digest('hex'), size: f.bytes.length },
    ]),
  );
}

export function verifyVolume(
  dir: string | undefined,
  identity: string | undefined,
  expected: Expected | undefined,
): VolumeReport {
  const problems: string[] = [];
  const total = expected ? [...expected.values()].reduce((n, f) => n + f.size, 0) : 0;
  if (dir === undefined) {
    return {
      ok: false,
      problems: ['no volume behind the claim'],
      bytesLost: total,
      bytesVerified: 0,
      identity: undefined,
    };
  }
  const marker = readJson(join(dir, '.modelcache', 'complete.json'));
  const manifest = readJson(join(dir, '.modelcache', 'manifest.json'));
  const markerIdentity =
    typeof marker?.value['identity'] === 'string' ? marker.value['identity'] : undefined;
  if (!marker) problems.push('no completion marker');
  else if (identity !== undefined && markerIdentity !== identity) {
    problems.push(
      `marker is for identity ${String(markerIdentity).slice(0, 12)}, not ${identity.slice(0, 12)}`,
    );
  }
  if (!manifest) problems.push('no manifest');
  else if (
    marker &&
    marker.value['manifestSha256'] !== createHash('sha256').update(manifest.raw).digest('hex')
  ) {
    problems.push('marker does not vouch for the manifest');
  }
  const listed = new Map<string, { size: number; sha256: string }>();
  const files = manifest?.value['files'];
  if (Array.isArray(files)) {
    for (const f of files as { path: string; size: number; sha256: string }[])
      listed.set(f.path, f);
  }
  let lost = 0;
  let verified = 0;
  const check = (path: string, size: number, sha: string): boolean => {
    const full = join(dir, path);
    let st;
    try {
      st = lstatSync(full);
    } catch {
      problems.push(`${path}: missing`);
      return false;
    }
    if (!st.isFile()) {
      problems.push(`${path}: not a regular file`);
      return false;
    }
    if (st.size !== size) {
      problems.push(`${path}: ${st.size} bytes, expected ${size}`);
      return false;
    }
    const got = sha256File(full);
    if (got !== sha) {
      problems.push(`${path}: sha256 ${got.slice(0, 12)}…, expected ${sha.slice(0, 12)}…`);
      return false;
    }
    return true;
  };
  if (expected) {
    for (const [path, f] of expected) {
      if (check(path, f.size, f.sha256)) verified += f.size;
      else lost += f.size;
      const l = listed.get(path);
      if (manifest && (!l || l.sha256 !== f.sha256))
        problems.push(`${path}: not in the manifest as staged from the source`);
    }
    for (const path of listed.keys())
      if (!expected.has(path)) problems.push(`${path}: staged but not in the source`);
  } else {
    for (const [path, f] of listed) {
      if (check(path, f.size, f.sha256)) verified += f.size;
      else lost += f.size;
    }
  }
  return {
    ok: problems.length === 0,
    problems,
    bytesLost: lost,
    bytesVerified: verified,
    identity: markerIdentity,
  };
}
