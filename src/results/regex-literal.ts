/**
 * The longest literal text that every match of a regular expression must contain, when one can be
 * read off its source safely; `undefined` otherwise. The scanner looks for this literal in raw
 * bytes and runs the regular expression only on lines that hold it.
 *
 * Conservative by design: only characters at the top level (outside groups and classes) count, any
 * top-level alternation gives up, and a character made optional by `?`, `*` or `{0,…}` is dropped.
 */
export function requiredLiteral(source: string): string | undefined {
  const runs = literalRuns(source);
  let best: string | undefined;
  for (const { text } of runs ?? []) if (!best || text.length > best.length) best = text;
  return best;
}

/**
 * The literal text a regular expression starts with, when every match must begin with it: the
 * source opens with plain characters, has no top-level alternation and no lookbehind (which could
 * look at what comes before the match). A line can then be matched from the first occurrence of
 * this literal on, with the same result as from its start.
 */
export function literalPrefix(source: string): string | undefined {
  if (/\(\?<[=!]/.test(source)) return undefined;
  const first = literalRuns(source)?.[0];
  return first && first.start === 0 ? first.text : undefined;
}

/** The runs of required literal characters and where each starts in the source; undefined with a top-level `|`. */
function literalRuns(source: string): Array<{ text: string; start: number }> | undefined {
  const runs: Array<{ text: string; start: number }> = [];
  let run = '';
  let runStart = 0;
  const endRun = () => {
    if (run) runs.push({ text: run, start: runStart });
    run = '';
  };
  const add = (c: string, at: number) => {
    if (!run) runStart = at;
    run += c;
  };

  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1];
      i++;
      if (next !== undefined && LITERAL_ESCAPES.has(next)) add(next, i - 1);
      else endRun();
      continue;
    }
    if (c === '(') {
      endRun();
      i = skipGroup(source, i);
      if (i < 0) return undefined;
      continue;
    }
    if (c === '[') {
      endRun();
      i = skipClass(source, i);
      if (i < 0) return undefined;
      continue;
    }
    if (c === '|') return undefined;
    if (c === '*' || c === '?') {
      run = run.slice(0, -1);
      endRun();
      continue;
    }
    if (c === '+') {
      endRun();
      continue;
    }
    if (c === '{') {
      const quantifier = /^\{(\d+)(,\d*)?\}/.exec(source.slice(i));
      if (quantifier) {
        if (Number(quantifier[1]) === 0) run = run.slice(0, -1);
        endRun();
        i += quantifier[0].length - 1;
        continue;
      }
      add(c, i);
      continue;
    }
    if (c === '.' || c === '^' || c === '$') {
      endRun();
      continue;
    }
    add(c, i);
  }
  endRun();
  return runs;
}

/** Escapes that stand for the character itself. */
const LITERAL_ESCAPES = new Set([...'.\\/-()[]{}*+?^$| :="\',#%&<>@!~`;_']);

/** Index of the `)` closing the group opened at `start`, or −1. */
function skipGroup(source: string, start: number): number {
  let depth = 0;
  for (let i = start; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') {
      i = skipClass(source, i);
      if (i < 0) return -1;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

/** Index of the `]` closing the class opened at `start`, or −1. */
function skipClass(source: string, start: number): number {
  for (let i = start + 1; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === ']') return i;
  }
  return -1;
}
