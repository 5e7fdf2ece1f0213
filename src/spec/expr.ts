/**
 * `expr:` of a derived metric: `+ - * /`, parentheses, numbers and other metrics' names, e.g.
 * `multicast_send + multicast_receive`. Parsed by recursive descent into a small tree and
 * evaluated over it: never `eval`. Names are letters, digits, `_` and `.`; a `-` is always minus.
 */

export type Expr =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'negate'; readonly operand: Expr }
  | { readonly kind: 'binary'; readonly op: '+' | '-' | '*' | '/'; readonly left: Expr; readonly right: Expr };

/** A malformed expression: what was expected, and where (1-based column). */
export class ExprSyntaxError extends Error {
  override readonly name = 'ExprSyntaxError';
  constructor(
    readonly problem: string,
    readonly column: number,
  ) {
    super(`${problem} at column ${column}`);
  }
}

type Token =
  | { readonly type: 'number'; readonly value: number; readonly at: number }
  | { readonly type: 'name'; readonly name: string; readonly at: number }
  | { readonly type: 'op'; readonly op: '+' | '-' | '*' | '/' | '(' | ')'; readonly at: number }
  | { readonly type: 'end'; readonly at: number };

const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.]*/;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const rest = source.slice(i);
    const number = NUMBER.exec(rest);
    if (number) {
      tokens.push({ type: 'number', value: Number(number[0]), at: i });
      i += number[0].length;
      continue;
    }
    const name = NAME.exec(rest);
    if (name) {
      tokens.push({ type: 'name', name: name[0], at: i });
      i += name[0].length;
      continue;
    }
    if ('+-*/()'.includes(c)) {
      tokens.push({ type: 'op', op: c as '+', at: i });
      i++;
      continue;
    }
    throw new ExprSyntaxError(`Unexpected \`${c}\`: use metric names, numbers, + - * / and parentheses`, i + 1);
  }
  tokens.push({ type: 'end', at: source.length });
  return tokens;
}

export function parseExpr(source: string): Expr {
  const tokens = tokenize(source);
  let position = 0;
  const peek = () => tokens[position]!;
  const isOp = (token: Token, ...ops: string[]) => token.type === 'op' && ops.includes(token.op);

  const expression = (): Expr => {
    let left = term();
    while (isOp(peek(), '+', '-')) {
      const op = (tokens[position++] as { op: '+' | '-' }).op;
      left = { kind: 'binary', op, left, right: term() };
    }
    return left;
  };
  const term = (): Expr => {
    let left = factor();
    while (isOp(peek(), '*', '/')) {
      const op = (tokens[position++] as { op: '*' | '/' }).op;
      left = { kind: 'binary', op, left, right: factor() };
    }
    return left;
  };
  const factor = (): Expr => {
    const token = tokens[position++]!;
    if (token.type === 'number') return { kind: 'number', value: token.value };
    if (token.type === 'name') return { kind: 'name', name: token.name };
    if (isOp(token, '-')) return { kind: 'negate', operand: factor() };
    if (isOp(token, '+')) return factor();
    if (isOp(token, '(')) {
      const inner = expression();
      const close = tokens[position++]!;
      if (!isOp(close, ')')) throw new ExprSyntaxError('Expected `)`', close.at + 1);
      return inner;
    }
    const got = token.type === 'end' ? 'the end' : token.type === 'op' ? `\`${token.op}\`` : 'this';
    throw new ExprSyntaxError(`Expected a metric name, a number or \`(\`, got ${got}`, token.at + 1);
  };

  const tree = expression();
  const rest = peek();
  if (rest.type !== 'end') throw new ExprSyntaxError('Expected an operator (+ - * /) or the end', rest.at + 1);
  return tree;
}

/** The metric names an expression reads, in order of first use. */
export function exprNames(expr: Expr): string[] {
  const names = new Set<string>();
  const walk = (e: Expr): void => {
    if (e.kind === 'name') names.add(e.name);
    else if (e.kind === 'negate') walk(e.operand);
    else if (e.kind === 'binary') {
      walk(e.left);
      walk(e.right);
    }
  };
  walk(expr);
  return [...names];
}

/** The value, or undefined when a name has no value or the result is not a finite number (x / 0). */
export function evaluateExpr(expr: Expr, valueOf: (name: string) => number | undefined): number | undefined {
  const value = (e: Expr): number | undefined => {
    switch (e.kind) {
      case 'number':
        return e.value;
      case 'name':
        return valueOf(e.name);
      case 'negate': {
        const v = value(e.operand);
        return v === undefined ? undefined : -v;
      }
      case 'binary': {
        const left = value(e.left);
        const right = value(e.right);
        if (left === undefined || right === undefined) return undefined;
        switch (e.op) {
          case '+':
            return left + right;
          case '-':
            return left - right;
          case '*':
            return left * right;
          default:
            return left / right;
        }
      }
    }
  };
  const result = value(expr);
  return result !== undefined && Number.isFinite(result) ? result : undefined;
}
