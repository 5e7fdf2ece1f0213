import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function useColour(stream: { readonly isTTY?: boolean }): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

/** Rows as aligned columns (two spaces apart); the columns in `right` are aligned right. */
export function alignColumns(rows: ReadonlyArray<readonly string[]>, right: readonly number[] = []): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (right.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** A store as people write it: a folder relative to `cwd` when below it, an S3 locator without its options. */
export function shownStore(locator: string, cwd: string = process.cwd()): string {
  if (locator.startsWith('file://')) {
    const path = fileURLToPath(locator);
    const rel = relative(cwd, path);
    return rel && !rel.startsWith(`..${sep}`) && rel !== '..' ? rel : path;
  }
  return locator.replace(/\?.*$/, '');
}
