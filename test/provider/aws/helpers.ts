import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import type { AwsProviderSpec } from '../../../src/spec/schema.ts';
import { awsProvider } from '../../../src/spec/provider-aws.ts';

/** Fake credentials: present so the SDK never looks further (no metadata service), never sent anywhere. */
export const FAKE_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKE1234',
  AWS_SECRET_ACCESS_KEY: 'fakeSecretKeyDoNotLeak/abcdefghijklmnopqrs',
  AWS_SESSION_TOKEN: 'FakeSessionTokenDoNotLeakXYZ0123456789',
} as const;

export function useFakeCredentials(): () => void {
  const saved = new Map<string, string | undefined>();
  for (const [key, value] of Object.entries({ ...FAKE_CREDENTIALS, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' })) {
    saved.set(key, process.env[key]);
    process.env[key] = value;
  }
  return () => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}

/** Every AWS client mocked; a command without a behaviour fails loudly instead of going to the network. */
export function mockAws() {
  const mocks = {
    ec2: mockClient(EC2Client),
    ssm: mockClient(SSMClient),
    iam: mockClient(IAMClient),
    sts: mockClient(STSClient),
    s3: mockClient(S3Client),
    quotas: mockClient(ServiceQuotasClient),
  };
  const unmocked = (name: string) => (input: unknown) => {
    throw new Error(`unmocked ${name} command with input ${JSON.stringify(input)}`);
  };
  mocks.ec2.onAnyCommand().callsFake(unmocked('ec2'));
  mocks.ssm.onAnyCommand().callsFake(unmocked('ssm'));
  mocks.iam.onAnyCommand().callsFake(unmocked('iam'));
  mocks.sts.onAnyCommand().callsFake(unmocked('sts'));
  mocks.s3.onAnyCommand().callsFake(unmocked('s3'));
  mocks.quotas.onAnyCommand().callsFake(unmocked('service-quotas'));
  return {
    ...mocks,
    restore() {
      for (const mock of Object.values(mocks)) mock.restore();
    },
  };
}

export type AwsMocks = ReturnType<typeof mockAws>;

/** An error shaped like the SDK's service exceptions. */
export function awsError(code: string, message: string = code, status = 400): Error {
  return Object.assign(new Error(message), { name: code, $fault: 'client', $metadata: { httpStatusCode: status } });
}

export const noSleep = async (): Promise<void> => {};

export function awsSpec(input: Record<string, unknown> = {}): AwsProviderSpec {
  return awsProvider.parse({ kind: 'aws', ...input });
}
