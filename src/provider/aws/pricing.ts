/**
 * A small built-in table of common instance types: vCPUs and the on-demand Linux price per hour in
 * us-east-1 (USD, list prices as published in 2024). Other regions cost up to about 30% more; spot
 * usually costs much less. Good enough for "how much will this run cost, roughly", nothing more.
 */
const TABLE: Readonly<Record<string, readonly [vcpus: number, usdPerHour: number]>> = {
  't3.nano': [2, 0.0052],
  't3.micro': [2, 0.0104],
  't3.small': [2, 0.0208],
  't3.medium': [2, 0.0416],
  't3.large': [2, 0.0832],
  't3.xlarge': [4, 0.1664],
  't3.2xlarge': [8, 0.3328],
  't3a.nano': [2, 0.0047],
  't3a.micro': [2, 0.0094],
  't3a.small': [2, 0.0188],
  't3a.medium': [2, 0.0376],
  't3a.large': [2, 0.0752],
  't3a.xlarge': [4, 0.1504],
  't3a.2xlarge': [8, 0.3008],
  't4g.micro': [2, 0.0084],
  't4g.small': [2, 0.0168],
  't4g.medium': [2, 0.0336],
  't4g.large': [2, 0.0672],
  't4g.xlarge': [4, 0.1344],
  'm5.large': [2, 0.096],
  'm5.xlarge': [4, 0.192],
  'm5.2xlarge': [8, 0.384],
  'm5.4xlarge': [16, 0.768],
  'm6i.large': [2, 0.096],
  'm6i.xlarge': [4, 0.192],
  'm6i.2xlarge': [8, 0.384],
  'm7i.large': [2, 0.1008],
  'm7i.xlarge': [4, 0.2016],
  'm6g.large': [2, 0.077],
  'm6g.xlarge': [4, 0.154],
  'm7g.large': [2, 0.0816],
  'm7g.xlarge': [4, 0.1632],
  'c5.large': [2, 0.085],
  'c5.xlarge': [4, 0.17],
  'c5.2xlarge': [8, 0.34],
  'c6i.large': [2, 0.085],
  'c6i.xlarge': [4, 0.17],
  'c7i.large': [2, 0.08925],
  'c7i.xlarge': [4, 0.1785],
  'c6g.large': [2, 0.068],
  'c7g.large': [2, 0.0725],
  'r5.large': [2, 0.126],
  'r6i.large': [2, 0.126],
  'r7i.large': [2, 0.1323],
};

export const PRICE_NOTE = 'us-east-1 on-demand Linux list prices; other regions cost up to ~30% more, spot usually less';

export function knownInstanceType(type: string): { vcpus: number; usdPerHour: number } | undefined {
  const row = TABLE[type];
  return row ? { vcpus: row[0], usdPerHour: row[1] } : undefined;
}

/** Graviton types (`t4g`, `m7g`, `c6gn`, …) need the arm64 AMI. */
export function architectureOf(type: string): 'x86_64' | 'arm64' {
  return /^[a-z]+\d+g[a-z]*\./.test(type) || type.startsWith('a1.') ? 'arm64' : 'x86_64';
}

/**
 * The Service Quotas code of the vCPU quota that covers `type`: the "standard" families (A, C, D,
 * H, I, M, R, T, Z) share one quota for on-demand and one for spot. Other families: `undefined`.
 */
export function vcpuQuotaCode(type: string, spot: boolean): string | undefined {
  const family = /^([a-z]+)/.exec(type)?.[1] ?? '';
  const standard = /^[acdhimrtz]/.test(family) && !/^(inf|dl|trn|hpc|u-)/.test(family);
  if (!standard) return undefined;
  return spot ? 'L-34B43A08' : 'L-1216C47A';
}
