/**
 * Runs `task` over `items` with at most `limit` at a time. After the first failure no new item is
 * started; the ones under way finish, then the failures are returned (never thrown) with their items.
 */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<Array<{ item: T; error: unknown }>> {
  const failures: Array<{ item: T; error: unknown }> = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && next < items.length) {
      const index = next++;
      const item = items[index]!;
      try {
        await task(item, index);
      } catch (error) {
        failures.push({ item, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return failures;
}

/** `forEachLimited`, throwing the first failure once the tasks under way have finished. */
export async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  const failures = await forEachLimited(items, limit, task);
  if (failures.length > 0) throw failures[0]!.error;
}
