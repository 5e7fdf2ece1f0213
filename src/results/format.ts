/** How numbers are shown in tables and the HTML report (CSV and JSON carry them unrounded). */

/** `ms` → 0.412 ms, 12.3 ms, 1.53 s, 2m05s; `bytes` → 512 B, 1.50 MiB; `count` → 4 or 3.67; else 3 significant digits + unit. */
export function formatValue(value: number | null | undefined, unit: string | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  switch (unit) {
    case 'ms':
      return formatMs(value);
    case 'bytes':
      return formatBytes(value);
    case 'count':
      return Number.isInteger(value) ? String(value) : value.toFixed(2);
    default:
      return unit ? `${significant(value)} ${unit}` : significant(value);
  }
}

export function formatMs(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${significant(ms)} ms`;
  if (abs < 60_000) return `${significant(ms / 1000)} s`;
  const sign = ms < 0 ? '-' : '';
  const seconds = Math.round(abs / 1000);
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${sign}${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${sign}${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${significant(value)} ${BYTE_UNITS[unit]}`;
}

/** Three significant digits, without exponent notation for everyday magnitudes. */
export function significant(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e15 || abs < 1e-6) return value.toExponential(2);
  if (abs >= 1000) return String(Math.round(value));
  if (Number.isInteger(value)) return String(value);
  const digits = Math.max(0, 2 - Math.floor(Math.log10(abs)));
  return value.toFixed(digits);
}
