/** Errors of the results side: one line for people, the data behind it for callers. */

/** Neither `runs/<id>/` nor `sweeps/<id>.json` is in the store. */
export class ResultsNotFoundError extends Error {
  override readonly name = 'ResultsNotFoundError';
  /** Bad input for the CLI. */
  readonly exitCode = 2;
  constructor(
    readonly id: string,
    readonly locator: string,
  ) {
    super(`No run or sweep \`${id}\` in ${locator}: check the id (\`lockstep ls\`) or pass the right --store`);
  }
}

/** Analysis was asked for without a download, and the local folder holds no such run. */
export class LocalResultsMissingError extends Error {
  override readonly name = 'LocalResultsMissingError';
  readonly exitCode = 2;
  constructor(readonly dir: string) {
    super(`No downloaded run in ${dir}: drop --no-download to fetch it, or point --out at the folder that holds it`);
  }
}

/** Some objects could not be fetched; what was fetched is kept and a new call resumes. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  readonly exitCode = 1;
  constructor(
    readonly key: string,
    readonly failed: number,
    options?: { cause?: unknown },
  ) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`Could not download ${failed} object(s), first \`${key}\`${reason}; run \`lockstep results\` again to resume`, options);
  }
}
