/**
 * No credential leaves the machine it is on: a local run on an S3 store, with credential values
 * set in the environment, writes none of them to the manifest, any object in the store (read
 * through the API and as the server's files on disk), the agents' logs, the nodes' logs and
 * results, or the local provider's state; nor do the EC2 user-data and tags of a run.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { layout } from '../../src/core/layout.ts';
import type { LaunchPlan } from '../../src/provider/aws/plan.ts';
import { instanceTags } from '../../src/provider/aws/launch.ts';
import { encodeUserData, renderUserData } from '../../src/provider/aws/user-data.ts';
import { openStore } from '../../src/store/open.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { expectNothingLeftRunning, project, startRun, type Project } from './harness.ts';

/**
 * Values no file may contain: the credentials the run's S3 clients use. s3rver knows one access key
 * id (S3RVER) and checks no signature, so the secret key and the session token can be anything.
 */
const SECRETS = {
  AWS_SECRET_ACCESS_KEY: 'LockstepLeakCheck/secret+Key0123456789abcdefXY',
  AWS_SESSION_TOKEN: 'LockstepLeakCheckSessionToken0123456789ABCDEFGHIJKLMNOP',
} as const;

/** Each secret as it could appear: as is, base64 (user-data), base64url (tags), URL-encoded. */
function disguises(value: string): string[] {
  return [value, Buffer.from(value).toString('base64').slice(0, 24), Buffer.from(value).toString('base64url').slice(0, 24), encodeURIComponent(value)];
}

function leaksIn(text: string | Uint8Array): string[] {
  const haystack = typeof text === 'string' ? text : Buffer.from(text).toString('latin1');
  return Object.entries(SECRETS).flatMap(([name, value]) => (disguises(value).some((d) => haystack.includes(d)) ? [name] : []));
}

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('credentials stay out of everything lockstep writes', () => {
  let s3: S3Server;
  let current: Project | undefined;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    s3 = await startS3Server();
    for (const [key, value] of Object.entries({ ...s3.env, ...SECRETS })) {
      saved[key] = process.env[key];
      process.env[key] = value;
    }
  });
  afterAll(async () => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await s3?.stop();
  });
  afterEach(async () => {
    if (current) await expectNothingLeftRunning(current.dir);
    current = undefined;
  });

  it('a local run on S3: manifest, store objects, server files, agent and node logs, results, local state', async () => {
    const p = (current = project(
      [
        'name: no-leaks',
        'instances: 3',
        'repeats: 2',
        'setup: echo "setup on $LOCKSTEP_ADDRESS"',
        // The program prints what lockstep gave it (its LOCKSTEP_* environment) and writes a file.
        'run: sh probe.sh',
        'params:',
        '  atSize: 38',
        'groups:',
        '  - ranks: "2-"',
        '    params: { role: adversary }',
        'startDelay: 300ms',
      ],
      { 'probe.sh': 'env | grep ^LOCKSTEP_ | sort\necho "{\\"rank\\": $LOCKSTEP_RANK}" > "$LOCKSTEP_OUTPUT_DIR/metrics.json"\n' },
    ));
    const outcome = await startRun(p, { store: s3.locator('secure/') }).outcome;
    expect({ ok: outcome.ok, state: outcome.status.state }).toEqual({ ok: true, state: 'done' });

    // The scan finds them where they are: in the environment every agent and command inherited.
    expect(leaksIn(JSON.stringify(process.env)).sort()).toEqual(Object.keys(SECRETS).sort());
    const leaks: string[] = [];
    const store = await openStore(s3.locator('secure/'));
    let objects = 0;
    try {
      const listed = await store.list('');
      expect(listed.map((o) => o.key)).toContain(layout.manifest(outcome.runId));
      for (const { key } of listed) {
        objects++;
        const body = await store.get(key);
        for (const name of leaksIn(body!)) leaks.push(`${name} in store object ${key}`);
      }
    } finally {
      await store.dispose();
    }
    let files = 0;
    for (const root of [s3.directory, p.home]) {
      for (const file of filesBelow(root)) {
        if (statSync(file).size > 50_000_000) continue;
        files++;
        for (const name of leaksIn(readFileSync(file))) leaks.push(`${name} in ${file}`);
      }
    }
    expect(leaks).toEqual([]);
    // What was scanned: the manifest, artifact, agent bundle, records, logs and results of 3 nodes × 2
    // repeats, the agents' own logs; the local state and every instance's working folder.
    expect(objects).toBeGreaterThan(40);
    expect(files).toBeGreaterThan(40);
  });

  it('the EC2 user-data and tags of a run', () => {
    const boot = {
      runId: 'no-leaks-20300101-000000-abcd',
      store: 's3://lockstep-bucket/experiments?region=eu-west-1&profile=research',
      agentKey: 'agents/0.1.0-0123456789abcdef/agent.mjs',
      expiresAt: new Date('2030-01-01T02:00:00Z'),
    };
    const script = renderUserData({ boot, architecture: 'x86_64', node: { key: 'runtimes/node-v24.0.0-linux-x64.tar.gz', sha256: '0'.repeat(64), dir: 'node-v24.0.0-linux-x64' } });
    const tags = instanceTags({ runId: boot.runId, specName: 'no-leaks', boot, plan: { addressKind: 'private' } as LaunchPlan });
    expect(leaksIn(script)).toEqual([]);
    expect(leaksIn(encodeUserData(script))).toEqual([]);
    expect(leaksIn(JSON.stringify(tags))).toEqual([]);
    // Nor the name of the operator's own profile: instances use their role.
    expect(JSON.stringify(tags)).not.toContain('research');
  });
});
