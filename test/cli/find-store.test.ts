/**
 * Commands find a run in the store it ran with, without `--store`: an S3 store (s3rver on
 * loopback), a folder store, and the bucket `lockstep aws bootstrap` configured; `ls` lists the
 * runs of every store it knows, saying which store each is in.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLockstep } from '../helpers/cli.ts';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { tempDir } from '../helpers/temp.ts';

let server: S3Server;
let root: string;
let env: Record<string, string>;
const runs: Record<'s3' | 'folder' | 'bootstrap', string> = { s3: '', folder: '', bootstrap: '' };

function project(name: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'app'), { recursive: true });
  writeFileSync(join(dir, 'app', 'hello.sh'), 'echo "hello from $LOCKSTEP_RANK"\n');
  writeFileSync(join(dir, 'spec.yaml'), 'name: found\ninstances: 1\nartifact: ./app\nrun: sh hello.sh\nstartDelay: 200ms\n');
  return dir;
}

async function run(cwd: string, args: string[], extraEnv: Record<string, string> = {}): Promise<string> {
  const result = await runLockstep(['run', 'spec.yaml', '--json', '--no-results', ...args], { cwd, env: { ...env, ...extraEnv } });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout).runId as string;
}

beforeAll(async () => {
  server = await startS3Server();
  root = tempDir('find-store');
  const bootstrapStore = server.locator('bootstrap');
  const awsConfig = join(root, 'aws.json');
  // What `lockstep aws bootstrap` saves: the store is what matters here.
  writeFileSync(
    awsConfig,
    JSON.stringify({
      formatVersion: 1,
      account: '123456789012',
      bucket: server.bucket,
      bucketRegion: 'us-east-1',
      prefix: 'bootstrap/',
      store: bootstrapStore,
      roleName: 'lockstep-instance',
      roleArn: 'arn:aws:iam::123456789012:role/lockstep-instance',
      instanceProfileName: 'lockstep-instance',
      instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/lockstep-instance',
      securityGroupName: 'lockstep',
      regions: {},
    }),
  );
  env = { ...server.env, LOCKSTEP_HOME: join(root, 'home'), LOCKSTEP_AWS_CONFIG: awsConfig };
  runs.s3 = await run(project('a'), ['--store', server.locator('elsewhere')]);
  runs.folder = await run(project('b'), []);
  // Started from another machine (another home): only the bootstrap bucket knows it.
  runs.bootstrap = await run(project('c'), ['--store', bootstrapStore], { LOCKSTEP_HOME: join(root, 'other-home') });
}, 180_000);

afterAll(async () => {
  await server?.stop();
});

describe('commands find the run’s store without --store', () => {
  it('ls lists the runs of every known store, naming the store of each', async () => {
    const elsewhere = project('d');
    const result = await runLockstep(['ls', '--json'], { cwd: elsewhere, env });
    expect(result.status, result.stderr).toBe(0);
    const listing = JSON.parse(result.stdout) as { items: Array<{ id: string; store: string }> };
    const storeOf = Object.fromEntries(listing.items.map((i) => [i.id, i.store]));
    expect(storeOf[runs.s3]).toMatch(/^s3:\/\/lockstep-test\/elsewhere/);
    expect(storeOf[runs.folder]).toBe(pathToFileURL(join(root, 'b', '.lockstep', 'store')).href);
    expect(storeOf[runs.bootstrap]).toMatch(/^s3:\/\/lockstep-test\/bootstrap/);
    const text = await runLockstep(['ls'], { cwd: elsewhere, env });
    expect(text.stdout).toMatch(new RegExp(`${runs.folder} .* ${join(root, 'b', '.lockstep', 'store').replaceAll('/', '\\/')}\\n`));
    expect(text.stdout).toMatch(new RegExp(`${runs.s3} .* s3://lockstep-test/elsewhere`));
  });

  it('status, logs, results and down find each run', async () => {
    const elsewhere = project('e');
    for (const runId of Object.values(runs)) {
      const status = await runLockstep(['status', runId, '--json'], { cwd: elsewhere, env });
      expect(status.status, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ runId, state: 'done' });
    }
    const log = await runLockstep(['logs', runs.s3, '--repeat', '1', '--rank', '0'], { cwd: elsewhere, env });
    expect(log).toMatchObject({ status: 0, stdout: 'hello from 0\n' });
    const results = await runLockstep(['results', runs.bootstrap, '--json'], { cwd: elsewhere, env });
    expect(results.status, results.stderr).toBe(0);
    expect(JSON.parse(results.stdout)).toMatchObject({ runId: runs.bootstrap });
    const down = await runLockstep(['down', runs.folder, '--json'], { cwd: elsewhere, env });
    expect(down.status, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ runId: runs.folder, ended: [] });
  });

  it('a run found nowhere, or a store that does not exist, is refused with exit 2', async () => {
    const elsewhere = project('f');
    const missing = await runLockstep(['status', 'found-20990101-000000-ffff'], { cwd: elsewhere, env });
    expect(missing.status, missing.stderr).toBe(2);
    expect(missing.stderr).toMatch(/^lockstep: No run `found-20990101-000000-ffff` in .*s3:\/\/lockstep-test\/bootstrap/);
    const noStore = await runLockstep(['ls', '--store', join(root, 'nonexistent')], { cwd: elsewhere, env });
    expect(noStore.status, noStore.stderr).toBe(2);
    expect(noStore.stderr).toBe(`lockstep: No store at ${join(root, 'nonexistent')}: the folder does not exist; check the locator (\`lockstep ls\` lists the runs of every store lockstep knows)\n`);
  });
});
