/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function useColour(stream: { readonly isTTY?: boolean }): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}
