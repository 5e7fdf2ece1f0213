import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanLines } from '../../src/results/line-scan.ts';
import { tempDir } from './fixture.ts';

let dir: { path: string; remove: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => dir.remove());

async function linesOf(text: string, needle: string | undefined, chunkSize: number): Promise<string[]> {
  const path = join(dir.path, `f-${Math.random().toString(36).slice(2)}.log`);
  await writeFile(path, text);
  const lines: string[] = [];
  const bytes = await scanLines(path, [{ needle: needle === undefined ? undefined : Buffer.from(needle), onLine: (l) => void lines.push(l) }], { chunkSize });
  expect(bytes).toBe(Buffer.byteLength(text));
  return lines;
}

function expected(text: string, needle: string | undefined): string[] {
  const lines = text.split('\n');
  if (text.endsWith('\n')) lines.pop();
  return lines.map((l) => l.replace(/\r$/, '')).filter((l) => needle === undefined || l.includes(needle));
}

describe('scanLines', () => {
  const text = [
    'alpha latency=1',
    'beta',
    '',
    'gamma latency=22 latency=23',
    'δέλτα latency=3 ünïcödé',
    'x'.repeat(5000) + ' latency=4',
    'latency=5',
    'tail without newline latency=6',
  ].join('\n');

  it.each([3, 7, 16, 64, 1 << 20])('finds the same lines as a split, with chunks of %i bytes', async (chunkSize) => {
    expect(await linesOf(text, 'latency=', chunkSize)).toEqual(expected(text, 'latency='));
    expect(await linesOf(text, undefined, chunkSize)).toEqual(expected(text, undefined));
    expect(await linesOf(text + '\n', 'latency=', chunkSize)).toEqual(expected(text + '\n', 'latency='));
  });

  it('strips CR of CRLF lines and decodes UTF-8 split across chunks', async () => {
    const crlf = 'ünï latency=1\r\nb\r\nlatency=2 ö\r\n';
    expect(await linesOf(crlf, 'latency=', 5)).toEqual(['ünï latency=1', 'latency=2 ö']);
    expect(await linesOf('ö'.repeat(100) + '\n', 'öö', 3)).toEqual(['ö'.repeat(100)]);
  });

  it('hands a line over once per matcher, however often it holds the needle', async () => {
    expect(await linesOf('a=1 a=2 a=3\nb\n', 'a=', 4)).toEqual(['a=1 a=2 a=3']);
  });

  it('handles an empty file', async () => {
    expect(await linesOf('', 'x', 8)).toEqual([]);
  });
});

describe('scanLines from the needle', () => {
  it('hands over each candidate line from the first occurrence of the needle', async () => {
    const path = join(dir.path, 'from-needle.log');
    await writeFile(path, 'a took 1 ms took 2 ms\r\nno\ntook 3 ms\nxx took');
    const lines: string[] = [];
    await scanLines(path, [{ needle: Buffer.from('took'), fromNeedle: true, onLine: (l) => void lines.push(l) }], { chunkSize: 5 });
    expect(lines).toEqual(['took 1 ms took 2 ms', 'took 3 ms', 'took']);
  });
});

describe('scanLines: the line after', () => {
  const text = ['total data:', '43939', '39557', 'noise', 'total data:', '12', 'x'.repeat(300), 'total data:', 'y', 'total data:'].join('\n');

  /** The lines `follow` after each line holding `label`, by splitting (the test's own reference). */
  function reference(label: string, follow: number): string[] {
    const lines = text.split('\n');
    return lines.flatMap((line, i) => (line.includes(label) && i + follow < lines.length ? [lines[i + follow]!] : []));
  }

  it.each([
    [1, 3],
    [2, 3],
    [3, 7],
    [1, 16],
    [2, 64],
    [1, 1 << 20],
  ])('hands over the line %i after each match, with chunks of %i bytes, with and without a needle', async (follow, chunkSize) => {
    const path = join(dir.path, `after-${follow}-${chunkSize}.log`);
    await writeFile(path, text);
    for (const needle of [Buffer.from('total data:'), undefined]) {
      const got: string[] = [];
      await scanLines(
        path,
        [{ needle, follow, onLine: (line) => line.includes('total data:'), onFollowing: (line) => void got.push(line) }],
        { chunkSize },
      );
      expect(got).toEqual(reference('total data:', follow));
    }
  });
});
