import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserDataTooLargeError } from '../../../src/provider/aws/errors.ts';
import {
  bootScriptBody,
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
const node = { key: 'runtimes/node-v24.1.0-linux-arm64.tar.gz', sha256: 'ab'.repeat(32), dir: 'node-v24.1.0-linux-arm64' };

describe('user-data', () => {
  let restoreEnv: () => void;
  beforeAll(() => (restoreEnv = useFakeCredentials()));
  afterAll(() => restoreEnv());

  it("is the run's values, then the boot script: valid bash, well under EC2's limit", () => {
    const script = renderUserData({ boot, architecture: 'arm64', node, failureGraceMinutes: 5 });
    expect(script.startsWith('#!/bin/bash\n')).toBe(true);
    const values = Object.fromEntries(
      script
        .split('\n')
        .filter((line) => /^[A-Z_0-9]+=/.test(line))
        .slice(0, 14)
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(values).toEqual({
      RUN_ID: 'r-20250101-abcd',
      EXPIRES_EPOCH: String(Date.parse('2030-01-01T02:00:00Z') / 1000),
      ARCHITECTURE: 'arm64',
      FAILURE_GRACE_MINUTES: '5',
      STORE_BUCKET: 'my-bucket',
      STORE_PREFIX: 'lockstep/',
      STORE_REGION: 'eu-west-1',
      STORE_ENDPOINT: "''",
      STORE_PATH_STYLE: "''",
      AGENT_KEY: 'agents/0.1.0/agent.mjs',
      AGENT_NODE_OPTIONS: '--max-semi-space-size=1',
      NODE_KEY: 'runtimes/node-v24.1.0-linux-arm64.tar.gz',
      NODE_SHA256: 'ab'.repeat(32),
      NODE_DIR: 'node-v24.1.0-linux-arm64',
    });
    expect(script.endsWith(bootScriptBody())).toBe(true);
    // Comments and indentation of the source stay out of the 16 KB.
    expect(bootScriptBody()).not.toMatch(/^\s*#|^\s+/m);
    expect(Buffer.byteLength(script)).toBeLessThan(USER_DATA_LIMIT - 3000);
    execFileSync('bash', ['-n'], { input: script });
    // No AWS CLI and no package manager on any path.
    expect(script).not.toMatch(/\baws s3\b|\bdnf\b|\byum\b|apt-get/);
  });

  it('holds no credential, and base64 decodes back to the script', () => {
    const script = renderUserData({ boot: { ...boot, store: 's3://my-bucket/lockstep?region=eu-west-1&profile=operator' }, architecture: 'x86_64', node });
    const decoded = Buffer.from(encodeUserData(script), 'base64').toString('utf8');
    expect(decoded).toBe(script);
    for (const secret of Object.values(FAKE_CREDENTIALS)) expect(decoded).not.toContain(secret);
    expect(decoded).not.toContain('operator');
  });

  it('leaves Node.js out when lockstep has none for the instances, and takes the endpoint and path style of the locator', () => {
    const script = renderUserData({ boot: { ...boot, store: 's3://b-1/p/q?endpoint=http://127.0.0.1:4566&pathStyle=false' }, architecture: 'x86_64', storeRegion: 'us-west-2' });
    expect(script).toContain("\nNODE_KEY=''\n");
    expect(script).toContain('\nSTORE_ENDPOINT=http://127.0.0.1:4566\n');
    expect(script).toContain('\nSTORE_PATH_STYLE=false\n');
    expect(script).toContain('\nSTORE_REGION=us-west-2\n');
    expect(script).toContain('\nSTORE_PREFIX=p/q/\n');
  });

  it('refuses a script over 16 KB', () => {
    expect(() => renderUserData({ boot: { ...boot, agentKey: `agents/${'x'.repeat(USER_DATA_LIMIT)}` }, architecture: 'x86_64' })).toThrow(UserDataTooLargeError);
    expect(() => encodeUserData('x'.repeat(USER_DATA_LIMIT + 1))).toThrow(/over EC2's limit of 16384/);
  });

  it('needs an S3 store, and drops the operator-only profile from the locator instances see', () => {
    expect(() => renderUserData({ boot: { ...boot, store: '.lockstep/store' }, architecture: 'x86_64' })).toThrow(/EC2 instances need an S3 store/);
    expect(parseStoreLocation('s3://bkt/a/b/?region=us-east-2&endpoint=http://x&pathStyle=true')).toEqual({
      bucket: 'bkt',
      prefix: 'a/b/',
      region: 'us-east-2',
      endpoint: 'http://x',
      forcePathStyle: true,
    });
    expect(withoutProfile('s3://bkt/p?region=us-east-1&profile=me')).toBe('s3://bkt/p/?region=us-east-1');
    expect(withoutProfile('s3://bkt/p')).toBe('s3://bkt/p');
  });
});
