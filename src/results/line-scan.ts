import { readFileSync } from 'node:fs';
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
  /**
   * Called with each candidate line (no line terminator), in file order. Returning true asks for a
   * line further on: the `follow`-th line after this one goes to `onFollowing`.
   */
  onLine(line: string): boolean | void;
  /** Lines after an accepted line that `onFollowing` gets (1: the next line). */
  readonly follow?: number;
  /** The line `follow` lines after each line `onLine` accepted (none when the file ends first). */
  onFollowing?(line: string): void;
}

/** Lines still to pass, per line asked for, before the line `onFollowing` wants: carried across chunks. */
type Pending = number[];

export interface ScanOptions {
  /** Bytes read at a time; default 256 KiB (a chunk that stays in the CPU's cache scans fastest). */
  readonly chunkSize?: number;
  /** The file's size, when known: a small file is read in one go (thousands of small logs scan fastest so). */
  readonly size?: number;
}

/** Files up to this size are read in one synchronous call rather than opened, read and closed asynchronously. */
const SMALL_FILE = 64 << 10;

/** Chunk buffers of files scanned before, for the next ones: no allocation per file. */
const spareBuffers: Buffer[] = [];

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
  const pending: Pending[] = matchers.map(() => []);
  let bytes = 0;
  let carry: Buffer[] = [];

  // Regions are whole lines, handed over in file order: a line asked for beyond one region's end
  // is found at the start of the next.
  const region = (buf: Buffer) => {
    for (let m = 0; m < matchers.length; m++) {
      const needle = needles[m];
      if (needle) searchRegion(buf, needle, matchers[m]!, pending[m]!);
      else everyLine(buf, matchers[m]!, pending[m]!);
    }
  };

  if (options.size !== undefined && options.size <= Math.min(SMALL_FILE, chunkSize)) {
    const whole = readFileSync(path);
    if (whole.length > 0) region(whole);
    return whole.length;
  }

  // One buffer, read into again and again: no allocation per chunk. What is kept across reads
  // (the start of a line the chunk cut) is copied out first.
  const spare = spareBuffers.pop();
  const buffer = spare?.length === chunkSize ? spare : Buffer.allocUnsafe(chunkSize);
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
    if (spareBuffers.length < 8) spareBuffers.push(buffer);
  }
  if (carry.length > 0) region(Buffer.concat(carry));
  return bytes;
}

/** Hands over each line of `buf` (whole lines; the last may lack its newline) that holds `needle`. */
function searchRegion(buf: Buffer, needle: Buffer, matcher: LineMatcher, pending: Pending): void {
  if (pending.length > 0) pending.splice(0, pending.length, ...handOver(buf, 0, pending, matcher));
  let from = 0;
  while (from < buf.length) {
    const hit = buf.indexOf(needle, from);
    if (hit < 0) return;
    const lineStart = matcher.fromNeedle || hit === 0 ? hit : buf.lastIndexOf(NEWLINE, hit - 1) + 1;
    let lineEnd = buf.indexOf(NEWLINE, hit + needle.length);
    if (lineEnd < 0) lineEnd = buf.length;
    if (matcher.onLine(decode(buf, lineStart, lineEnd)) === true && matcher.onFollowing) {
      pending.push(...handOver(buf, lineEnd + 1, [(matcher.follow ?? 1) - 1], matcher));
    }
    from = lineEnd + 1;
  }
}

/**
 * From `start` (the start of a line), for each count: passes that many lines and hands the next
 * one to `onFollowing`. Returns the counts still to go when `buf` ends first.
 */
function handOver(buf: Buffer, start: number, counts: readonly number[], matcher: LineMatcher): number[] {
  const left: number[] = [];
  for (let count of counts) {
    let at = start;
    while (count > 0 && at < buf.length) {
      const newline = buf.indexOf(NEWLINE, at);
      at = newline < 0 ? buf.length : newline + 1;
      count--;
    }
    if (at >= buf.length) {
      left.push(count);
      continue;
    }
    let end = buf.indexOf(NEWLINE, at);
    if (end < 0) end = buf.length;
    matcher.onFollowing!(decode(buf, at, end));
  }
  return left;
}

function everyLine(buf: Buffer, matcher: LineMatcher, pending: Pending): void {
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(NEWLINE, start);
    if (end < 0) end = buf.length;
    const line = decode(buf, start, end);
    if (pending.length > 0) {
      // Each count is the lines still to pass: this line is wanted where it is 0.
      for (let i = 0; i < pending.length; ) {
        if (pending[i] === 0) {
          matcher.onFollowing!(line);
          pending.splice(i, 1);
        } else {
          pending[i]! -= 1;
          i++;
        }
      }
    }
    if (matcher.onLine(line) === true && matcher.onFollowing) pending.push((matcher.follow ?? 1) - 1);
    start = end + 1;
  }
}

function decode(buf: Buffer, start: number, end: number): string {
  if (end > start && buf[end - 1] === CR) end--;
  return buf.toString('utf8', start, end);
}
