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
    super(`${describeAwsCall(operation, options?.cause, region)}: ${fix}`, options);
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

const SERVICE_NAMES: Record<string, string> = {
  ec2: 'EC2',
  iam: 'IAM',
  s3: 'S3',
  ssm: 'SSM',
  sts: 'STS',
  servicequotas: 'Service Quotas',
};

const NO_ANSWER = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/**
 * How an AWS call failed, as people need to hear it: the service's own error (`service`), no answer
 * at all (`no-answer`: refused, unreachable, timed out), or an answer that is not an AWS one
 * (`not-aws`: an endpoint that does not serve this API, a proxy's error page).
 */
export function awsFailure(error: unknown): { readonly kind: 'service' | 'no-answer' | 'not-aws'; readonly text: string } {
  const e = (error ?? {}) as { name?: string; code?: string; message?: string; $fault?: string; address?: string; port?: number; hostname?: string };
  const status = awsHttpStatus(error);
  if (e.code && NO_ANSWER.has(e.code)) {
    const where = e.address ? ` at ${e.address}${e.port ? `:${e.port}` : ''}` : e.hostname ? ` at ${e.hostname}` : '';
    return { kind: 'no-answer', text: `${e.code === 'ECONNREFUSED' ? 'connection refused' : e.code}${where}` };
  }
  if (e.name === 'TimeoutError') return { kind: 'no-answer', text: 'timed out' };
  if (e.name === 'SyntaxError' || /Deserialization error/.test(e.message ?? '') || (e.$fault === undefined && status !== undefined && e.name === 'Error')) {
    return { kind: 'not-aws', text: `an answer that is not AWS's${status ? ` (HTTP ${status})` : ''}` };
  }
  const code = awsErrorCode(error);
  const message = awsErrorMessage(error);
  return { kind: 'service', text: message && message !== code ? `${code}: ${message}` : code };
}

/**
 * One line for a failed call, naming the service: `Service Quotas did not answer
 * servicequotas:GetServiceQuota (connection refused at 127.0.0.1:4566)`, `ec2:RunInstances in
 * eu-west-1 failed (UnauthorizedOperation: …)`. Never a bare exception name.
 */
export function describeAwsCall(api: string, error: unknown, region?: string): string {
  const service = SERVICE_NAMES[api.split(':')[0]!] ?? api.split(':')[0]!;
  const where = region ? ` in ${region}` : '';
  const failure = awsFailure(error);
  if (failure.kind === 'no-answer') return `${service} did not answer ${api}${where} (${failure.text})`;
  if (failure.kind === 'not-aws') return `${service} did not answer ${api}${where}: the endpoint gave ${failure.text}, so it may not serve ${service}`;
  return `${api}${where} failed (${failure.text})`;
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
