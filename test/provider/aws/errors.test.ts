import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { formatDoctorReport, runAwsDoctor } from '../../../src/provider/aws/doctor.ts';
import { awsFailure, describeAwsCall } from '../../../src/provider/aws/errors.ts';
import { awsError, useFakeCredentials } from './helpers.ts';

describe('errors of AWS calls name the service and what happened, never a bare exception name', () => {
  it('tells a service refusal, no answer, and an answer that is not AWS apart', () => {
    expect(describeAwsCall('ec2:RunInstances', awsError('UnauthorizedOperation', 'You are not authorized'), 'eu-west-1')).toBe(
      'ec2:RunInstances in eu-west-1 failed (UnauthorizedOperation: You are not authorized)',
    );
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 4566, $metadata: { attempts: 1 } });
    expect(awsFailure(refused).kind).toBe('no-answer');
    expect(describeAwsCall('servicequotas:GetServiceQuota', refused, 'us-east-1')).toBe(
      'Service Quotas did not answer servicequotas:GetServiceQuota in us-east-1 (connection refused at 127.0.0.1:4566)',
    );
    // What the SDK throws when an endpoint answers with an HTML page (moto for an API it does not serve).
    const html = Object.assign(new SyntaxError(`Unexpected token '<', "<!doctype "... is not valid JSON\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.`), {
      $metadata: { httpStatusCode: 500 },
    });
    expect(awsFailure(html).kind).toBe('not-aws');
    const text = describeAwsCall('servicequotas:GetAWSDefaultServiceQuota', html);
    expect(text).toBe("Service Quotas did not answer servicequotas:GetAWSDefaultServiceQuota: the endpoint gave an answer that is not AWS's (HTTP 500), so it may not serve Service Quotas");
    expect(text).not.toMatch(/SyntaxError/);
  });

  describe('doctor against an endpoint where nothing answers', () => {
    let restore: () => void;
    const saved = process.env.AWS_ENDPOINT_URL;
    beforeAll(() => {
      restore = useFakeCredentials();
      process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:1';
    });
    afterAll(() => {
      restore();
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL;
      else process.env.AWS_ENDPOINT_URL = saved;
    });

    it('says STS did not answer and to check the network and AWS_ENDPOINT_URL', async () => {
      const clients = new AwsClients({ maxAttempts: 1 });
      try {
        const report = await runAwsDoctor({ clients, configPath: '/nonexistent/aws.json' });
        expect(report.ok).toBe(false);
        expect(report.checks).toEqual([
          {
            check: 'credentials',
            status: 'problem',
            detail: 'STS did not answer sts:GetCallerIdentity (connection refused at 127.0.0.1:1)',
            fix: 'check the network and AWS_ENDPOINT_URL (http://127.0.0.1:1), then run it again',
          },
        ]);
        expect(formatDoctorReport(report)).not.toMatch(/Error\b/);
      } finally {
        clients.destroy();
      }
    });
  });
});
