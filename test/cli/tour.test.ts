/**
 * A scripted tour of the CLI, as a newcomer takes it in a first hour: every command's help, the
 * bad input a typo makes, a dry run, a run that keeps its instances, a sweep, a failing setup,
 * finding logs again and cleaning up. Each step checks the exit code and the lines a user reads.
 * Local provider, N ≤ 3: about half a minute.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { localWorkDir } from '../../src/provider/local/state.ts';
import { runLockstep, type CliResult } from '../helpers/cli.ts';
import { tempDir } from '../helpers/temp.ts';
import { alive, expectNothingLeftRunning, localState } from '../reliability/harness.ts';

const cwd = tempDir('tour');
const home = join(cwd, 'home');
mkdirSync(join(cwd, 'app'));
writeFileSync(join(cwd, 'app', 'hello.sh'), 'echo "hello from $LOCKSTEP_RANK in repeat $LOCKSTEP_REPEAT"\n');

const spec = (name: string, ...lines: string[]) => [`name: ${name}`, 'instances: 2', 'artifact: ./app', 'run: sh hello.sh', 'startDelay: 300ms', ...lines, ''].join('\n');
const files: Record<string, string> = {
  'hello.yaml': spec('hello', 'repeats: 2'),
  'kept.yaml': spec('kept', 'keep: true', 'timeouts:', '  instance: 10m'),
  'sweep.yaml': spec('sweep', 'params:', '  role: plain', 'groups:', '  - ranks: "0"', '    params: { role: first }', '  - count: 1', '    params: { role: counted }', 'matrix:', '  instances: [2, 3]'),
  'setup.yaml': spec('broken', `setup: 'echo preparing; echo "E: no package foo" >&2; exit 3'`),
  'quoted.yaml': spec('quoted', 'groups:', '  - ranks: 3', '    params: { role: x }'),
  'zero.yaml': spec('zero', 'timeouts:', '  run: 0'),
  'matrix.yaml': spec('matrix', 'matrix:', '  instance: [2, 3]'),
};
for (const [name, text] of Object.entries(files)) writeFileSync(join(cwd, name), text);

// No terminal here: no colour codes anywhere, whatever the command.
const ESC = '\u001b[';
async function lockstep(...args: string[]): Promise<CliResult> {
  const result = await runLockstep(args, { cwd, env: { LOCKSTEP_HOME: home, LOCKSTEP_STORE: '' } });
  expect(result.stdout + result.stderr, `lockstep ${args.join(' ')}`).not.toContain(ESC);
  return result;
}
const json = (result: CliResult) => JSON.parse(result.stdout);

afterAll(() => expectNothingLeftRunning(cwd));

const BIN = fileURLToPath(new URL('../../bin/lockstep.mjs', import.meta.url));
/** `lockstep …` on a terminal 120 columns wide (a pseudo-terminal from `script`): stdout and stderr as one. */
async function onTerminal(args: string, extraEnv: Record<string, string> = {}): Promise<{ status: number; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOCKSTEP_HOME: home, TERM: 'xterm-256color', ...extraEnv };
  if (!('NO_COLOR' in extraEnv)) delete env.NO_COLOR;
  // What a test runner may set to steer colour in the processes it starts.
  for (const name of ['FORCE_COLOR', 'COLOR', 'FORCE_TTY']) delete env[name];
  const command = `stty cols 120 rows 40; ${process.execPath} ${BIN} ${args}`;
  const run = promisify(execFile)('script', ['-qec', command, '/dev/null'], { cwd, env });
  return run.then(({ stdout }) => ({ status: 0, output: stdout }), (error: { code: number; stdout: string }) => ({ status: error.code, output: error.stdout }));
}
const COLOUR = /\u001b\[[\d;]*m/;

describe('a tour of the CLI', () => {
  it('every command explains itself: --help, `lockstep help`, a usage line that starts with `lockstep`', async () => {
    const top = await lockstep('--help');
    expect(top.status).toBe(0);
    const commands = /USAGE lockstep (\S+)/.exec(top.stdout)![1]!.split('|');
    expect(commands).toEqual(['run', 'ls', 'status', 'logs', 'down', 'gc', 'schema', 'results', 'import', 'aws']);
    expect((await lockstep('help')).stdout).toBe(top.stdout);
    expect((await lockstep()).stdout).toBe(top.stdout);
    for (const command of [...commands, 'aws bootstrap', 'aws doctor']) {
      const help = await lockstep(...command.split(' '), '--help');
      expect(help.status, command).toBe(0);
      expect(help.stdout, command).toMatch(new RegExp(`^USAGE lockstep ${command}\\b`, 'm'));
    }
    const viaHelp = await lockstep('help', 'logs');
    expect(viaHelp.stdout).toContain('--setup');
    expect(viaHelp.stdout).toContain('--json');
    expect((await lockstep('--version')).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('refuses bad input with one line that names the fix, exit 2, and launches nothing', async () => {
    const table: Array<[string[], RegExp]> = [
      [['run', 'hello.yaml', '--dryrun'], /^Unknown option `--dryrun`: did you mean `--dry-run`\?/],
      [['run', 'hello.yaml', '--sett', 'instances=3'], /^Unknown option `--sett`: did you mean `--set`\?/],
      [['run', 'hello.yaml', 'extra.yaml'], /^Unexpected argument `extra\.yaml`/],
      [['result', 'x'], /^Unknown command `result`: did you mean `lockstep results`\?/],
      [['ls', '--stor', '/x'], /^Unknown option `--stor`: did you mean `--store`\?/],
      [['ls', '--store', '/nonexistent'], /^No store at \/nonexistent: the folder does not exist/],
      [['logs'], /^Missing <runId>: `lockstep logs <runId>`/],
      [['status', 'no-such-run'], /^No run `no-such-run` in .*: list runs with `lockstep ls`/],
      [['run', 'quoted.yaml'], /^quoted\.yaml:7:5: groups\.0\.ranks: .*got `3`: write it in quotes, `"3"`$/],
      [['run', 'zero.yaml'], /^zero\.yaml:7:3: timeouts\.run: Expected a duration longer than 0/],
      [['run', 'matrix.yaml'], /^matrix\.yaml:7:3 \(matrix point instance=2\): instance: Unknown key `instance`: did you mean `instances`\?$/],
      [['run', 'matrix.yaml', '--dry-run'], /^matrix\.yaml:7:3 \(matrix point instance=2\): instance: Unknown key/],
      [['ls', '--store', ''], /^An empty store locator: give a folder path or s3:\/\/bucket\/prefix/],
      [['run', 'hello.yaml', '--store', 'ftp://x/y', '--dry-run'], /^Unknown store `ftp:\/\/x\/y`/],
    ];
    for (const [args, message] of table) {
      const result = await lockstep(...args);
      expect({ status: result.status, stdout: result.stdout, lines: result.stderr.trim().split('\n').length }, `lockstep ${args.join(' ')}: ${result.stderr}`).toEqual({ status: 2, stdout: '', lines: 1 });
      expect(result.stderr.replace(/^lockstep: /, '').trim(), args.join(' ')).toMatch(message);
    }
    expect(existsSync(home), 'something was launched').toBe(false);
    expect(existsSync(join(cwd, '.lockstep')), 'something was stored').toBe(false);
  });

  it('a dry run checks every sweep point and shows the plan: the points and each rank’s groups and params', async () => {
    const dry = await lockstep('run', 'sweep.yaml', '--dry-run');
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('Sweep of 2 points, one run each (every point checked)');
    expect(dry.stdout).toMatch(/^\s+0\s+group0\s+role=first$/m);
    // `count: 1` takes the rank after the group before it.
    expect(dry.stdout).toMatch(/^\s+1\s+group1\s+role=counted$/m);
    expect(dry.stdout).toMatch(/^\s+2\s+-\s+role=plain$/m);
    expect(dry.stdout).toContain('Nothing was launched.');
    expect(existsSync(home)).toBe(false);
  });

  let helloId = '';
  it('runs, lists, and shows status, logs (a whole repeat) and results, with --json for scripts', async () => {
    const run = await lockstep('run', 'hello.yaml', '--no-results', '--json');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    helloId = json(run).runId;
    expect(json(run).repeats.map((r: { state: string }) => r.state)).toEqual(['done', 'done']);
    const ls = await lockstep('ls');
    expect(ls.stdout).toMatch(new RegExp(`^${helloId}\\s.*local N=2 repeats=2`, 'm'));
    const status = await lockstep('status', helloId);
    expect(status.stdout).toMatch(/^State: done; instances: 2 done; store \.lockstep\/store$/m);
    // --repeat without --rank: every rank of that repeat.
    const logs = await lockstep('logs', helloId, '--repeat', '2');
    expect(logs.stdout).toContain('hello from 0 in repeat 2\n');
    expect(logs.stdout).toContain('hello from 1 in repeat 2\n');
    expect(logs.stdout).not.toContain('repeat 1\n');
    expect(json(await lockstep('results', helloId, '--json'))).toBeTypeOf('object');
    const results = await lockstep('results', helloId);
    expect(results.status, results.stderr).toBe(0);
    // A figure shown as – says why: loopback instances share one interface's counters.
    expect(results.stdout).toMatch(/^bytes sent \(sum\)\s+–/m);
    expect(results.stdout.replace(/\n\s+/g, ' ')).toContain('bytes sent and received: not measured: these nodes shared one machine’s loopback interface');
    if (/^peak memory \(max\)\s+–/m.test(results.stdout)) expect(results.stdout).toContain('peak memory: not measured: every command ended before its memory was first sampled');
    const wrongFlag = await lockstep('logs', helloId, '--instance', 'x');
    expect(wrongFlag.status).toBe(2);
    expect(wrongFlag.stderr).toContain('`--instance` goes with `--setup`');
  });

  it('on a terminal: colours (none with NO_COLOR) and a live task list on stderr', async () => {
    expect((await onTerminal('run hello.yaml --no-results')).output).toMatch(COLOUR);
    expect((await onTerminal('--help', { NO_COLOR: '1' })).output).not.toMatch(COLOUR);
    const run = await onTerminal('run hello.yaml --no-results', { NO_COLOR: '1' });
    expect(run.status, run.output).toBe(0);
    expect(run.output).not.toMatch(COLOUR);
    expect(run.output).toMatch(/✔ Launched 2 instances, run \S+/);
    expect(run.output).toMatch(/✔ Repeat 2: ready 2\/2 · done 2\/2/);
    expect(run.output).toMatch(/^Logs and results: lockstep logs \S+\r?$/m);
  });

  let keptId = '';
  it('keeps the instances of a `keep: true` run: status says kept, gc leaves them, `down` ends them', async () => {
    const run = await lockstep('run', 'kept.yaml', '--no-results');
    expect(run.status, run.stderr).toBe(0);
    keptId = /^Run (\S+)$/m.exec(run.stdout)![1]!;
    expect(run.stdout).toMatch(new RegExp(`^Kept: 2 instance\\(s\\) stay up until \\S+, or \`lockstep down ${keptId}\`$`, 'm'));
    expect((await lockstep('status', keptId)).stdout).toMatch(/^State: done; instances: 2 kept up;/m);

    const gc = await lockstep('gc');
    expect(gc.status).toBe(0);
    expect(gc.stdout).toContain(`local: left 2 instance(s) of ${keptId} up: the run keeps them (keep: true)`);
    const pids = (await localState(home, keptId))!.instances.map((i) => i.pid);
    expect(pids.every(alive)).toBe(true);

    const down = await lockstep('down', keptId);
    expect(down.status, down.stderr).toBe(0);
    expect(down.stdout).toMatch(new RegExp(`^Run ${keptId} is down: 2 instance\\(s\\) ended`, 'm'));
    expect(pids.some(alive)).toBe(false);
    // Every repeat had run: ending the kept instances aborted nothing.
    const after = await lockstep('status', keptId);
    expect(after.stdout).toMatch(/^State: done;/m);
    expect(after.stdout).toMatch(/^Ended \(lockstep down\) at \S+, after every repeat had run$/m);
  });

  it('runs a sweep: the progress and results name it, `ls` lists it, `status` shows its points', async () => {
    const run = await lockstep('run', 'sweep.yaml');
    expect(run.status, run.stderr).toBe(0);
    const sweepId = /^Sweep (\S+): 2 points$/m.exec(run.stdout)![1]!;
    const results = /^Results: (\S+) and one folder per run in (\S+) /m.exec(run.stdout)!;
    expect(existsSync(join(cwd, results[1]!))).toBe(true);
    const ls = await lockstep('ls');
    expect(ls.stdout).toMatch(new RegExp(`^${sweepId}\\s.*sweep of 2 points`, 'm'));
    const runs = [...ls.stdout.matchAll(new RegExp(`^(\\S+)\\s.*\\(point (\\d) of ${sweepId}\\)`, 'gm'))].map((m) => m[1]!);
    expect(runs).toHaveLength(2);
    for (const runId of runs) expect(existsSync(join(cwd, results[2]!, runId))).toBe(true);
    const status = await lockstep('status', sweepId);
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(/^\s*1\s+instances=2\s+\S+\s+done$/m);
    expect(status.stdout).toMatch(/^\s*2\s+instances=3\s+\S+\s+done$/m);
    expect(json(await lockstep('status', sweepId, '--json')).points).toHaveLength(2);
  });

  let brokenId = '';
  it('explains a failing setup once per instance, with its exit code and last output, and shows that output', async () => {
    const run = await lockstep('run', 'setup.yaml');
    expect(run.status).toBe(1);
    // No repeat ran: no table of figures that were never measured after the summary.
    expect(run.stdout).not.toMatch(/^Results: /m);
    expect(run.stdout).not.toMatch(/^figure /m);
    brokenId = /^Run (\S+)$/m.exec(run.stdout)![1]!;
    expect(run.stdout).toMatch(/^1\s+not run\s/m);
    expect(run.stdout).toContain(`Setup failed on 2 instance(s) (output: lockstep logs ${brokenId} --setup [--instance <id>]):`);
    const lines = run.stdout.split('\n').filter((line) => /^ {2}local-\S+: /.test(line));
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^ {2}local-[0-9a-f]+: exit 3: E: no package foo$/);
    // Progress on stderr, plain lines: the repeat never ran, and nothing says it failed.
    expect(run.stderr).toMatch(/^Repeat 1: not run$/m);
    expect(run.stderr).not.toMatch(/Repeat 1: failed/);

    const setupLogs = await lockstep('logs', brokenId, '--setup');
    expect(setupLogs.status).toBe(0);
    expect(setupLogs.stdout.match(/^preparing$/gm)).toHaveLength(2);
    const instance = /^ {2}(local-[0-9a-f]+): /.exec(lines[0]!)![1]!;
    const one = json(await lockstep('logs', brokenId, '--setup', '--instance', instance, '--json'));
    expect(one).toEqual([{ instanceId: instance, stdout: 'preparing\n', stderr: 'E: no package foo\n' }]);
  });

  it('gc removes the working folders of ended runs and says how much it freed; --dry-run shows the same first', async () => {
    const work = localWorkDir(home);
    const ended = [helloId, keptId, brokenId];
    // gc leaves folders younger than a minute (a run may be starting): these are older.
    const old = new Date(Date.now() - 5 * 60_000);
    for (const runId of readdirSync(work)) utimesSync(join(work, runId), old, old);
    const dry = await lockstep('gc', '--dry-run');
    expect(dry.status).toBe(0);
    for (const runId of ended) expect(dry.stdout).toMatch(new RegExp(`^local: would remove the working folder of ${runId} \\(.+\\): `, 'm'));
    expect(dry.stdout).toMatch(/^local: would free \S+/m);
    for (const runId of ended) expect(existsSync(join(work, runId))).toBe(true);

    const gc = await lockstep('gc', '--json');
    expect(gc.status).toBe(0);
    const report = json(gc);
    expect(report.local.folders.map((f: { runId: string }) => f.runId)).toEqual(expect.arrayContaining(ended));
    expect(report.local.freedBytes).toBeGreaterThan(0);
    for (const runId of ended) expect(existsSync(join(work, runId))).toBe(false);
    expect((await lockstep('gc')).stdout).toBe('Nothing to clean up.\n');
  });

  it('prints the spec schema, and refuses a folder to import that is not there', async () => {
    const schema = await lockstep('schema');
    expect(schema.status).toBe(0);
    expect(JSON.parse(schema.stdout).properties.instances).toBeDefined();
    const missing = await lockstep('import', 'no-such-folder');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^lockstep: no-such-folder: No such folder: check the path\n$/);
  });
});
