/** Bad input the user can fix from the message alone (the CLI exits 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
