import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserDataTooLargeError } from '../../../src/provider/aws/errors.ts';
import {
  encodeUserData,
  parseStoreLocation,
  renderUserData,
  USER_DATA_LIMIT,
} from '../../../src/provider/aws/user-data.ts';
import { withoutProfile } from '../../../src/store/s3-locator.ts';
import { FAKE_CREDENTIALS, useFakeCredentials } from './helpers.ts';

const boot = {
  runId: 'r-20250101-abcd',
  store: 's3://my-bucket/lockstep?region=eu-west-1',
  agentKey: 'agents/0.1.0/agent.mjs',
  expiresAt: new Date('2030-01-01T02:00:00Z'),
};

describe('user-data', () => {
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());

  it('is a bash script that installs Node 20, fetches the agent bundle with the AWS CLI, arms a dead-man switch and starts the agent', () => {
    const script = renderUserData(boot);
    expect(script.startsWith('#!/bin/bash\n')).toBe(true);
    expect(script).toContain('dnf install -y -q nodejs20');
    expect(script).toContain("AGENT_URI=s3://my-bucket/lockstep/agents/0.1.0/agent.mjs");
    expect(script).toContain('AGENT_REGION=eu-west-1');
    expect(script).toContain('aws s3 cp --only-show-errors');
    expect(script).toContain(`EXPIRES_EPOCH=${Date.parse('2030-01-01T02:00:00Z') / 1000}`);
    expect(script).toContain('shutdown -h "+$1" "$2"');
    expect(script).toContain('power_off_in "$minutes"');
    expect(script).toContain('export LOCKSTEP_IDENTITY=ec2');
    expect(script).toContain('"$NODE" "$AGENT_FILE"');
    // Valid bash.
    execFileSync('bash', ['-n'], { input: script });
  });

  it('holds no credential, and base64 decodes back to the script', () => {
    const script = renderUserData(boot);
    const encoded = encodeUserData(script);
    expect(encoded).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    expect(decoded).toBe(script);
    for (const secret of Object.values(FAKE_CREDENTIALS)) expect(decoded).not.toContain(secret);
    expect(decoded).not.toMatch(/AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)/);
  });

  it('lets a test substitute the install, the download, the power-off and the metadata endpoint, and runs with bash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lockstep-userdata-'));
    try {
      writeFileSync(join(dir, 'bundle.mjs'), "console.log('agent ran as', process.env.LOCKSTEP_IDENTITY, process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT)\n");
      const script = renderUserData(boot, {
        installCommand: 'true',
        downloadCommand: `cp ${join(dir, 'bundle.mjs')} "$AGENT_FILE"`,
        powerOffCommand: `echo "power off in $1 min: $2" >> ${join(dir, 'power.log')}`,
        imdsEndpoint: 'http://127.0.0.1:1',
        workDir: join(dir, 'work'),
      });
      expect(script).not.toContain('dnf');
      expect(script).not.toContain('shutdown -h');
      const out = execFileSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
      expect(out).toContain('agent ran as ec2 http://127.0.0.1:1');
      const power = execFileSync('cat', [join(dir, 'power.log')], { encoding: 'utf8' });
      expect(power).toMatch(/^power off in \d+ min: lockstep run r-20250101-abcd expired\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends the instance soon when a boot step keeps failing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lockstep-userdata-'));
    try {
      const script = renderUserData(boot, {
        installCommand: 'true',
        downloadCommand: 'false',
        powerOffCommand: `echo "$1 $2" >> ${join(dir, 'power.log')}`,
        workDir: join(dir, 'work'),
        failureGraceMinutes: 3,
      });
      // retry sleeps 1+4+9+16 s between attempts: make `sleep` instant for the test.
      writeFileSync(join(dir, 'sleep'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      let status = 0;
      try {
        execFileSync('bash', ['-c', script], { stdio: 'pipe', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
      } catch (error) {
        status = (error as { status: number }).status;
      }
      expect(status).not.toBe(0);
      const power = execFileSync('cat', [join(dir, 'power.log')], { encoding: 'utf8' }).trim().split('\n');
      expect(power[1]).toBe('3 lockstep boot failed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a script over 16 KB', () => {
    expect(() => renderUserData(boot, { installCommand: '#'.repeat(USER_DATA_LIMIT) })).toThrow(UserDataTooLargeError);
    expect(() => encodeUserData('x'.repeat(USER_DATA_LIMIT + 1))).toThrow(/over EC2's limit of 16384/);
  });

  it('needs an S3 store, and drops the operator-only profile from the locator instances see', () => {
    expect(() => renderUserData({ ...boot, store: '.lockstep/store' })).toThrow(/EC2 instances need an S3 store/);
    expect(parseStoreLocation('s3://bkt/a/b/?region=us-east-2&endpoint=http://x')).toEqual({
      bucket: 'bkt',
      prefix: 'a/b/',
      region: 'us-east-2',
      endpoint: 'http://x',
    });
    expect(withoutProfile('s3://bkt/p?region=us-east-1&profile=me')).toBe('s3://bkt/p/?region=us-east-1');
    expect(withoutProfile('s3://bkt/p')).toBe('s3://bkt/p');
  });
});
