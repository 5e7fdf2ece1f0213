import { open } from 'node:fs/promises';

/** Someone interested in some lines of a file. */
export interface LineMatcher {
  /**
   * Bytes every interesting line contains. Lines without them are never decoded; without a needle
   * every line is decoded and handed over.
   */
  readonly needle?: Uint8Array;
  /**
   * Hand over each candidate line from the needle's first occurrence on, not from its start: for a
   * matcher whose every match begins with the needle (see `literalPrefix`), it is the same answer
   * for less decoding.
   */
  readonly fromNeedle?: boolean;
  /** Called with each candidate line (no line terminator), in file order. */
  onLine(line: string): void;
}

export interface ScanOptions {
  /** Bytes read at a time; default 256 KiB (a chunk that stays in the CPU's cache scans fastest). */
  readonly chunkSize?: number;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * Streams a file line by line for a set of matchers, in chunks: memory stays at one chunk plus one
 * line whatever the file's size. Each chunk's complete lines are searched for each matcher's needle
 * with `Buffer.indexOf` (a fast byte search), and only the lines that hold it are decoded as UTF-8.
 * Returns the bytes read.
 */
export async function scanLines(path: string, matchers: readonly LineMatcher[], options: ScanOptions = {}): Promise<number> {
  const chunkSize = options.chunkSize ?? 256 << 10;
  const needles = matchers.map((m) => (m.needle && m.needle.length > 0 ? Buffer.from(m.needle) : undefined));
  let bytes = 0;
  let carry: Buffer[] = [];

  const region = (buf: Buffer) => {
    for (let m = 0; m < matchers.length; m++) {
      const needle = needles[m];
      if (needle) searchRegion(buf, needle, matchers[m]!);
      else everyLine(buf, matchers[m]!);
    }
  };

  // One buffer, read into again and again: no allocation per chunk. What is kept across reads
  // (the start of a line the chunk cut) is copied out first.
  const buffer = Buffer.allocUnsafe(chunkSize);
  const handle = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, chunkSize, null);
      if (bytesRead === 0) break;
      bytes += bytesRead;
      const chunk = buffer.subarray(0, bytesRead);
      const first = chunk.indexOf(NEWLINE);
      if (first < 0) {
        carry.push(Buffer.from(chunk));
        continue;
      }
      let start = 0;
      if (carry.length > 0) {
        carry.push(chunk.subarray(0, first + 1));
        region(Buffer.concat(carry));
        carry = [];
        start = first + 1;
      }
      const last = chunk.lastIndexOf(NEWLINE);
      if (last >= start) region(chunk.subarray(start, last + 1));
      if (last + 1 < chunk.length) carry.push(Buffer.from(chunk.subarray(last + 1)));
    }
  } finally {
    await handle.close();
  }
  if (carry.length > 0) region(Buffer.concat(carry));
  return bytes;
}

/** Hands over each line of `buf` (whole lines; the last may lack its newline) that holds `needle`. */
function searchRegion(buf: Buffer, needle: Buffer, matcher: LineMatcher): void {
  let from = 0;
  while (from < buf.length) {
    const hit = buf.indexOf(needle, from);
    if (hit < 0) return;
    const lineStart = matcher.fromNeedle || hit === 0 ? hit : buf.lastIndexOf(NEWLINE, hit - 1) + 1;
    let lineEnd = buf.indexOf(NEWLINE, hit + needle.length);
    if (lineEnd < 0) lineEnd = buf.length;
    matcher.onLine(decode(buf, lineStart, lineEnd));
    from = lineEnd + 1;
  }
}

function everyLine(buf: Buffer, matcher: LineMatcher): void {
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(NEWLINE, start);
    if (end < 0) end = buf.length;
    matcher.onLine(decode(buf, start, end));
    start = end + 1;
  }
}

function decode(buf: Buffer, start: number, end: number): string {
  if (end > start && buf[end - 1] === CR) end--;
  return buf.toString('utf8', start, end);
}
