import type { Reporter, TestModule } from 'vitest/node';

/** Ends the output with one plain line, `vitest: N passed, N failed, N skipped`, for CI to read. */
export default class PlainSummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (module.state() === 'failed' && [...module.children.allTests()].length === 0) failed++;
    }
    failed += unhandledErrors.length;
    // After the default reporter's summary, which is printed in this same hook.
    process.once('exit', () => console.log(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped`));
  }
}
