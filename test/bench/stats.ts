// Small helpers shared by the benchmarks.

/** The p-th percentile (nearest rank) of the samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? NaN;
}

export function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}
