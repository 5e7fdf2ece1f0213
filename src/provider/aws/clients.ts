/**
 * AWS SDK clients, one per service and region, made on first use and shared. The AWS provider's
 * modules get them from here so that tests (aws-sdk-client-mock) and `--profile` reach them all.
 * This module loads the SDK: import it only on AWS paths.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';

export interface AwsClientsOptions {
  /** A named profile of `~/.aws/config`; default: the standard credential chain. */
  readonly profile?: string;
  /** Attempts per request the SDK makes itself (throttling, 5xx). Default 5. */
  readonly maxAttempts?: number;
}

/** The region IAM and STS calls go to (both are global services). */
export const GLOBAL_REGION = 'us-east-1';

export class AwsClients {
  private readonly cache = new Map<string, { destroy(): void }>();
  constructor(readonly options: AwsClientsOptions = {}) {}

  ec2(region: string): EC2Client {
    return this.get(`ec2:${region}`, () => new EC2Client(this.config(region)));
  }
  ssm(region: string): SSMClient {
    return this.get(`ssm:${region}`, () => new SSMClient(this.config(region)));
  }
  s3(region: string): S3Client {
    return this.get(`s3:${region}`, () => new S3Client(this.config(region)));
  }
  quotas(region: string): ServiceQuotasClient {
    return this.get(`quotas:${region}`, () => new ServiceQuotasClient(this.config(region)));
  }
  iam(): IAMClient {
    return this.get('iam', () => new IAMClient(this.config(GLOBAL_REGION)));
  }
  sts(): STSClient {
    return this.get('sts', () => new STSClient(this.config(GLOBAL_REGION)));
  }

  destroy(): void {
    for (const client of this.cache.values()) client.destroy();
    this.cache.clear();
  }

  private config(region: string) {
    return { region, maxAttempts: this.options.maxAttempts ?? 5, ...(this.options.profile ? { profile: this.options.profile } : {}) };
  }

  private get<T extends { destroy(): void }>(key: string, make: () => T): T {
    let client = this.cache.get(key) as T | undefined;
    if (!client) {
      client = make();
      this.cache.set(key, client);
    }
    return client;
  }
}
