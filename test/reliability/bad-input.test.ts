/**
 * Every refused input of `lockstep run` (and of the commands that end runs): one line on stderr
 * that names the fix, exit code 2, nothing launched, nothing written to the store. The table in
 * docs/reliability.md lists the same cases; a test checks that it does.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runLockstep } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';

const DOCS = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));

const good = 'name: hello\ninstances: 4\nartifact: ./app\nrun: sh hello.sh {{rank}}\nstartDelay: 300ms\n';
const aws = (lines: string) => `${good}provider:\n  kind: aws\n${lines}`;

/** The environment of a user with no AWS configuration at all (and no instance metadata to ask). */
function bareEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('AWS_') && !key.startsWith('LOCKSTEP_')) env[key] = value;
  return {
    ...env,
    HOME: home,
    LOCKSTEP_HOME: join(home, 'lockstep-home'),
    AWS_CONFIG_FILE: join(home, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

const DUMMY_KEYS = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEEXAMPLE00', AWS_SECRET_ACCESS_KEY: 'dummy-secret-for-a-closed-port', AWS_REGION: 'us-east-1' };

interface Case {
  /** The row of the docs table. */
  readonly input: string;
  readonly spec?: string;
  readonly args?: (ctx: { closedPort: number }) => string[];
  readonly env?: Record<string, string>;
  readonly message: RegExp;
}

let closedPort = 0;

const cases: Case[] = [
  { input: 'malformed YAML', spec: 'name: hello\ninstances: [4\nrun: x\n', message: /^spec\.yaml:\d+:\d+: Malformed YAML: .*; fix the syntax at this line$/ },
  { input: 'a spec that is not a mapping', spec: '- name: hello\n', message: /^spec\.yaml:1:1: Expected a YAML mapping of spec keys/ },
  { input: 'a spec file that does not exist', args: () => ['run', 'missing.yaml'], message: /^missing\.yaml: No spec file here: check the path/ },
  { input: 'an unknown key', spec: good + 'instnaces: 4\n', message: /^spec\.yaml:6:1: instnaces: Unknown key `instnaces`: did you mean `instances`\?$/ },
  { input: 'an unknown nested key', spec: good + 'timeouts:\n  barier: 10s\n', message: /^spec\.yaml:7:3: timeouts\.barier: Unknown key `barier`: did you mean `barrier`\?$/ },
  { input: 'a missing required key', spec: good.replace('run: sh hello.sh {{rank}}\n', ''), message: /^spec\.yaml(:\d+:\d+)?: run: Missing required key: add it \(expected text\)$/ },
  { input: 'wrong type: a word for a number', spec: good.replace('instances: 4', 'instances: four'), message: /^spec\.yaml:2:1: instances: Expected a number, got `"four"`$/ },
  { input: 'wrong type: a fraction for a count', spec: good + 'repeats: 1.5\n', message: /^spec\.yaml:6:1: repeats: Expected a whole number, got `1\.5`$/ },
  { input: 'wrong type: a list for params', spec: good + 'params: [a, b]\n', message: /^spec\.yaml:6:1: params: Expected a mapping \(`name: value` lines\), got `\["a","b"\]`$/ },
  { input: 'wrong type: not a duration', spec: good + 'timeouts:\n  run: soon\n', message: /^spec\.yaml:7:3: timeouts\.run: Expected a duration such as `90s`, `5m`, `2h` or a number of seconds, got `"soon"`$/ },
  { input: 'wrong type: not a boolean', spec: good + 'keep: sometimes\n', message: /^spec\.yaml:6:1: keep: Expected `true` or `false`, got `"sometimes"`$/ },
  { input: 'a number where text is expected', spec: good + 'groups:\n  - ranks: 3\n    params: { role: adversary }\n', message: /^spec\.yaml:7:5: groups\.0\.ranks: Expected a rank range as text \(`"4-7"`, `"4-"`, `"3"`\) or a list of ranks, got `3`: write it in quotes, `"3"`$/ },
  { input: 'an empty value', spec: good + 'setup: ""\n', message: /^spec\.yaml:6:1: setup: Expected text that is not empty, got `""`$/ },
  { input: 'a timeout of 0', spec: good + 'timeouts:\n  run: 0\n', message: /^spec\.yaml:7:3: timeouts\.run: Expected a duration longer than 0, such as `90s` or `5m`, got `0`$/ },
  { input: '`instances` < 1', spec: good.replace('instances: 4', 'instances: 0'), message: /^spec\.yaml:2:1: instances: Expected a number greater than 0, got `0`$/ },
  {
    input: 'more local instances than loopback addresses',
    spec: good.replace('instances: 4', 'instances: 100000000'),
    message: /^100,000,000 local instances do not fit on this machine: the local provider has [\d,]+ loopback addresses; lower `instances`, or use the aws provider$/,
  },
  {
    input: 'more local instances than this machine\'s memory holds',
    spec: good.replace('instances: 4', 'instances: 100000'),
    message: /^100,000 local instances need about [\d,]+ GiB \(\d+ MiB per agent, before the command's own\), and this machine has [\d.]+ GiB available: lower `instances` \(at most [\d,]+ here\), or use the aws provider$/,
  },
  { input: '`repeats` < 1', spec: good + 'repeats: 0\n', message: /^spec\.yaml:6:1: repeats: Expected a number greater than 0, got `0`$/ },
  { input: '`minInstances` > `instances`', spec: good + 'minInstances: 5\n', message: /^spec\.yaml:6:1: minInstances: `minInstances` must not exceed `instances`/ },
  {
    input: 'a group range outside 0..N-1',
    spec: good + 'groups:\n  - ranks: 2-5\n    params: { role: adversary }\n',
    message: /^spec\.yaml:7:5: groups\.0\.ranks: Group `group0` names rank 4, outside 0\.\.3 for 4 instances: shrink the group or raise `instances`$/,
  },
  { input: 'a group with more than one of ranks, count, fraction', spec: good + 'groups:\n  - ranks: 0-1\n    count: 2\n', message: /^spec\.yaml:7:5: groups\.0: A group needs exactly one of `ranks`, `count`, `fraction` or `hosts`/ },
  { input: 'an unknown template variable', spec: good.replace('{{rank}}', '{{rnak}}'), message: /^spec\.yaml:4:1: run: Unknown template variable \{\{rnak\}\}: use one of \{\{rank\}\}, / },
  { input: 'a template parameter not in `params`', spec: good.replace('{{rank}}', '{{params.size}}'), message: /^spec\.yaml:4:1: run: Unknown template variable \{\{params\.size\}\}: add `size` to `params` or a group$/ },
  { input: 'a rank variable in `setup`', spec: good + 'setup: echo {{rank}}\n', message: /^spec\.yaml:6:1: setup: Unknown template variable \{\{rank\}\}/ },
  { input: 'a missing artifact', spec: good.replace('./app', './missing'), message: /^spec\.yaml:3:1: artifact: No file or folder at .*missing: fix the path \(it is relative to the spec file\)$/ },
  { input: 'a `--set` without `=`', args: () => ['run', 'spec.yaml', '--set', 'instances'], message: /^--set: instances: Expected `key\.path=value`/ },
  { input: 'a bad value from `--set`', args: () => ['run', 'spec.yaml', '--set', 'repeats=0'], message: /^spec\.yaml \(--set repeats=0\): repeats: Expected a number greater than 0, got `0`$/ },
  { input: 'an unknown provider', spec: good + 'provider: gce\n', message: /^spec\.yaml:6:1: provider\.kind: Expected a `kind` of `local` or `aws`, got `"gce"`$/ },
  { input: 'an unknown region', spec: aws('  regions: [us-east-9]\n'), message: /^spec\.yaml:8:13: provider\.regions\.0: Unknown AWS region `us-east-9`: did you mean `us-east-1`\?$/ },
  { input: 'an unknown region in per-region counts', spec: aws('  regions: { us-east-1: 2, eu-wst-1: 2 }\n'), message: /^spec\.yaml:8:3: provider\.regions: Unknown AWS region `eu-wst-1`: did you mean `eu-west-1`\?$/ },
  { input: 'an unknown instance type', spec: aws('  instanceType: t3a.gigantic\n'), message: /^spec\.yaml:8:3: provider\.instanceType: Expected an EC2 instance type such as `t3a\.medium` \(family, then a size: nano … 48xlarge, metal\), got `"t3a\.gigantic"`$/ },
  { input: 'an unknown store scheme', args: () => ['run', 'spec.yaml', '--store', 'ftp://example/x'], message: /^Unknown store `ftp:\/\/example\/x`: use a folder path or s3:\/\/bucket\/prefix$/ },
  { input: 'a malformed S3 locator', args: () => ['run', 'spec.yaml', '--store', 's3://x/prefix'], message: /^Invalid bucket name `x` in `s3:\/\/x\/prefix`: S3 bucket names have 3 to 63/ },
  {
    input: 'an unreachable store',
    args: ({ closedPort }) => ['run', 'spec.yaml', '--store', `s3://lockstep-test/runs?endpoint=http://127.0.0.1:${closedPort}`],
    env: DUMMY_KEYS,
    message: /^Cannot reach the store s3:\/\/lockstep-test\/runs\?endpoint=http:\/\/127\.0\.0\.1:\d+: S3 ListObjectsV2 of `runs\/runs\/` in bucket `lockstep-test` failed after 3 attempts: .*ECONNREFUSED.*; check the locator and credentials$/,
  },
  {
    input: 'an AWS run with a folder store',
    spec: aws('  regions: [us-east-1]\n'),
    args: () => ['run', 'spec.yaml', '--store', 'store'],
    message: /^An AWS run needs an S3 store, not `store`: set `store: s3:\/\/bucket\/prefix` or run `lockstep aws bootstrap`$/,
  },
  {
    input: 'no AWS credentials for the aws provider',
    spec: aws('  regions: [us-east-1]\n'),
    args: ({ closedPort }) => ['run', 'spec.yaml', '--store', `s3://lockstep-test/runs?endpoint=http://127.0.0.1:${closedPort}`],
    message: /^No AWS credentials for the aws provider: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`; nothing was launched$/,
  },
  {
    input: 'an AWS profile that does not exist',
    spec: aws('  regions: [us-east-1]\n  profile: nobody\n'),
    args: ({ closedPort }) => ['run', 'spec.yaml', '--store', `s3://lockstep-test/runs?endpoint=http://127.0.0.1:${closedPort}`],
    message: /^No AWS credentials for the aws provider \(profile `nobody`\): set AWS_PROFILE/,
  },
  { input: '`lockstep down` of a run not in the store', args: () => ['down', 'no-such-run', '--store', '.'], message: /^No run `no-such-run` in file:\/\/.*: list runs with `lockstep ls` \(and check --store\)$/ },
  { input: 'a `--store` folder that does not exist', args: () => ['ls', '--store', 'store'], message: /^No store at .*\/store: the folder does not exist; check the locator/ },
  { input: '`lockstep down --grace` that is not a duration', args: () => ['down', 'some-run', '--grace', 'soon'], message: /^Expected --grace to be a duration such as `15s` or `0`, got `soon`$/ },
];

describe('bad input is refused: one line, exit 2, nothing launched, nothing written', () => {
  beforeAll(async () => {
    // A port nothing listens on: bind one, note it, close it.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closedPort = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
  });

  for (const c of cases) {
    it(`refuses ${c.input}`, async () => {
      const cwd = tempDir('bad');
      mkdirSync(join(cwd, 'app'));
      writeFileSync(join(cwd, 'app', 'hello.sh'), 'echo hello\n');
      writeFileSync(join(cwd, 'spec.yaml'), c.spec ?? good);
      const env = bareEnv(cwd, c.env);
      const began = Date.now();
      const result = await runLockstep(c.args?.({ closedPort }) ?? ['run', 'spec.yaml', '--store', 'store'], { cwd, env, bareEnv: true, timeoutMs: 60_000 });
      const lines = result.stderr.trim().split('\n');
      expect({ status: result.status, lines: lines.length, stdout: result.stdout }, result.stderr).toEqual({ status: 2, lines: 1, stdout: '' });
      expect(lines[0]).toMatch(/^lockstep: /);
      expect(lines[0]!.slice('lockstep: '.length)).toMatch(c.message);
      // Fast, even for a store that does not answer: no minutes of retries.
      expect(Date.now() - began).toBeLessThan(15_000);
      expect(existsSync(join(cwd, 'store')), 'the store was written to').toBe(false);
      expect(existsSync(join(cwd, '.lockstep')), 'the default store was written to').toBe(false);
      expect(existsSync(env.LOCKSTEP_HOME!), 'something was launched').toBe(false);
    });
  }

  it('docs/reliability.md has a row for every refused input', () => {
    const docs = readFileSync(DOCS, 'utf8');
    const rows = new Set(docs.split('\n').filter((line) => line.startsWith('| ')).map((line) => line.split('|')[1]!.trim()));
    expect(cases.map((c) => c.input).filter((input) => !rows.has(input))).toEqual([]);
  });
});
