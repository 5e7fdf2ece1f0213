import { DescribeInstancesCommand, TerminateInstancesCommand, type DescribeInstancesCommandInput, type Instance } from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AwsClients } from '../../../src/provider/aws/clients.ts';
import { AwsApiError, AwsSetupError } from '../../../src/provider/aws/errors.ts';
import { createAwsProvider } from '../../../src/provider/aws/provider.ts';
import { TAG } from '../../../src/core/tags.ts';
import { awsError, awsSpec, mockAws, noSleep, useFakeCredentials, type AwsMocks } from './helpers.ts';

function instance(id: string, runId: string, state: string, extra: Partial<Instance> = {}): Instance {
  return {
    InstanceId: id,
    State: { Name: state as 'running' },
    PrivateIpAddress: '10.0.0.1',
    PublicIpAddress: '198.51.100.1',
    Tags: [
      { Key: TAG.runId, Value: runId },
      { Key: TAG.expiresAt, Value: '2030-01-01T00:00:00.000Z' },
      { Key: TAG.addressKind, Value: 'private' },
    ],
    ...extra,
  };
}

async function regionOf(thisValue: unknown): Promise<string> {
  return (thisValue as { config: { region: () => Promise<string> } }).config.region();
}

describe('AWS provider: list and terminate', () => {
  let aws: AwsMocks;
  let clients: AwsClients;
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());
  beforeEach(() => {
    aws = mockAws();
    clients = new AwsClients();
  });
  afterEach(() => {
    clients.destroy();
    aws.restore();
  });

  const provider = () =>
    createAwsProvider({ spec: awsSpec({ regions: ['us-east-1', 'eu-west-1'] }), clients, configPath: '/nonexistent/aws.json', sleep: noSleep });

  it("lists a run's instances in every region of the spec, by the run-id tag, reading every page", async () => {
    aws.ec2.on(DescribeInstancesCommand).callsFake(async (input: DescribeInstancesCommandInput, getClient: () => unknown) => {
      const region = await regionOf(getClient());
      if (region === 'eu-west-1') return { Reservations: [{ Instances: [instance('i-eu', 'run-1', 'pending')] }] };
      if (!input.NextToken) return { Reservations: [{ Instances: [instance('i-us1', 'run-1', 'running')] }], NextToken: 'page2' };
      return { Reservations: [{ Instances: [instance('i-us2', 'run-1', 'terminated'), { InstanceId: 'i-untagged' }] }] };
    });
    const listed = await provider().list('run-1');
    expect(listed.map((i) => [i.id, i.state, i.region])).toEqual([
      ['i-us1', 'running', 'us-east-1'],
      ['i-us2', 'ended', 'us-east-1'],
      ['i-eu', 'pending', 'eu-west-1'],
    ]);
    expect(listed[0]).toMatchObject({ runId: 'run-1', address: '10.0.0.1', expiresAt: new Date('2030-01-01T00:00:00.000Z') });
    const filters = aws.ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input.Filters);
    expect(filters.every((f) => JSON.stringify(f) === JSON.stringify([{ Name: `tag:${TAG.runId}`, Values: ['run-1'] }]))).toBe(true);
  });

  it('lists every lockstep instance when no run id is given', async () => {
    aws.ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    await provider().list();
    expect(aws.ec2.commandCalls(DescribeInstancesCommand)[0]!.args[0].input.Filters).toEqual([{ Name: 'tag-key', Values: [TAG.runId] }]);
  });

  it('terminates instances grouped by region, retrying InvalidInstanceID.NotFound right after launch', async () => {
    aws.ec2.on(DescribeInstancesCommand).callsFake(async (_input: unknown, getClient: () => unknown) => {
      const region = await regionOf(getClient());
      return { Reservations: [{ Instances: region === 'us-east-1' ? [instance('i-1', 'r', 'running'), instance('i-2', 'r', 'running')] : [instance('i-3', 'r', 'running')] }] };
    });
    let euCalls = 0;
    aws.ec2.on(TerminateInstancesCommand).callsFake(async (_input: unknown, getClient: () => unknown) => {
      if ((await regionOf(getClient())) === 'eu-west-1' && ++euCalls === 1) throw awsError('InvalidInstanceID.NotFound', "The instance ID 'i-3' does not exist");
      return {};
    });
    const p = provider();
    await p.list('r');
    await p.terminate(['i-1', 'i-2', 'i-3']);
    const calls = await Promise.all(
      aws.ec2.commandCalls(TerminateInstancesCommand).map(async (c) => [await regionOf(c.thisValue), c.args[0].input.InstanceIds]),
    );
    expect(calls).toEqual([
      ['us-east-1', ['i-1', 'i-2']],
      ['eu-west-1', ['i-3']],
      ['eu-west-1', ['i-3']],
    ]);
  });

  it('finds the region of an id it has not seen, and names ids it cannot find', async () => {
    aws.ec2.on(DescribeInstancesCommand).callsFake(async (input: DescribeInstancesCommandInput, getClient: () => unknown) => {
      const wanted = input.Filters?.[0]?.Values ?? [];
      return (await regionOf(getClient())) === 'eu-west-1' && wanted.includes('i-eu') ? { Reservations: [{ Instances: [{ InstanceId: 'i-eu' }] }] } : {};
    });
    aws.ec2.on(TerminateInstancesCommand).resolves({});
    await provider().terminate(['i-eu']);
    expect(await regionOf(aws.ec2.commandCalls(TerminateInstancesCommand)[0]!.thisValue)).toBe('eu-west-1');
    await expect(provider().terminate(['i-nowhere'])).rejects.toThrow(AwsSetupError);
  });

  it('gives up on an id EC2 keeps not knowing, with the fix', async () => {
    aws.ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('i-1', 'r', 'running')] }] });
    aws.ec2.on(TerminateInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    const p = createAwsProvider({ spec: awsSpec(), clients, configPath: '/nonexistent/aws.json', sleep: noSleep });
    await p.list('r');
    const error = await p.terminate(['i-1']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AwsApiError);
    expect((error as Error).message).toMatch(/ec2:TerminateInstances in us-east-1 failed \(InvalidInstanceID.NotFound.*\): EC2 does not know/);
    expect(aws.ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(6);
  });

  it('accepts the bare provider section of a spec', () => {
    expect(createAwsProvider(awsSpec()).kind).toBe('aws');
  });
});
