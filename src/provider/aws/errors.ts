/**
 * Typed errors of the AWS provider. Each carries its data; the message is one line for people that
 * names the fix. Callers branch on the class and fields, never on message text.
 */

/** What the user must set up or change before lockstep can use AWS (bad input: exit code 2). */
export class AwsSetupError extends Error {
  override readonly name = 'AwsSetupError';
  readonly exitCode = 2;
  readonly region: string | undefined;
  constructor(
    /** What is wrong, e.g. "No instance profile". */
    readonly problem: string,
    /** What to do about it, e.g. "run `lockstep aws bootstrap`". */
    readonly fix: string,
    options?: { cause?: unknown; region?: string },
  ) {
    super(`${options?.region ? `${options.region}: ` : ''}${problem}: ${fix}`, options);
    this.region = options?.region;
  }
}

/** An AWS call that failed in a way lockstep does not handle itself. */
export class AwsApiError extends Error {
  override readonly name = 'AwsApiError';
  readonly exitCode = 1;
  constructor(
    /** The API called, e.g. `ec2:RunInstances`. */
    readonly operation: string,
    /** The AWS error code, e.g. `UnauthorizedOperation`. */
    readonly code: string,
    readonly region: string | undefined,
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    const detail = options?.cause instanceof Error ? options.cause.message.split('\n')[0] : '';
    super(`${operation}${region ? ` in ${region}` : ''} failed (${code}${detail ? `: ${detail}` : ''}): ${fix}`, options);
  }
}

/** The user-data script would exceed EC2's 16 KB limit. */
export class UserDataTooLargeError extends Error {
  override readonly name = 'UserDataTooLargeError';
  readonly exitCode = 2;
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`The boot script is ${bytes} bytes, over EC2's limit of ${limit}: shorten the store locator or the substituted commands`);
  }
}

/** The code of an AWS SDK error (`InsufficientInstanceCapacity`, `NoSuchEntity`, …), or `Unknown`. */
export function awsErrorCode(error: unknown): string {
  if (error && typeof error === 'object') {
    const { Code, code, name } = error as { Code?: unknown; code?: unknown; name?: unknown };
    for (const candidate of [Code, code, name]) if (typeof candidate === 'string' && candidate !== 'Error') return candidate;
  }
  return 'Unknown';
}

export function awsErrorMessage(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

/** The HTTP status of an AWS SDK error, when it has one. */
export function awsHttpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** Codes that mean "no credentials, or they are not accepted". */
export function isCredentialsError(error: unknown): boolean {
  const code = awsErrorCode(error);
  return (
    code === 'CredentialsProviderError' ||
    code === 'InvalidClientTokenId' ||
    code === 'ExpiredToken' ||
    code === 'ExpiredTokenException' ||
    code === 'SignatureDoesNotMatch' ||
    code === 'AuthFailure' ||
    code === 'UnrecognizedClientException'
  );
}
