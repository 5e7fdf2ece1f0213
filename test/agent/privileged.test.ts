import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { forgetUndo, holdPrivileged, NOT_INSTALLED, privilegedArgv, privilegedRunner, recordUndo, refusalOf, runUndoJournal, warmPrivileged } from '../../src/agent/privileged.ts';
import { tempDir } from '../helpers/temp.ts';

describe('privileged runner', () => {
  it('runs the tool with its arguments and input, and returns a failure as data', async () => {
    const run = privilegedRunner({ env: { PATH: '', LOCKSTEP_NFT: '/bin/cat', LOCKSTEP_TC: '/bin/false' } });
    expect(await run('nft', ['-'], 'flush ruleset\n')).toEqual({ code: 0, stdout: 'flush ruleset\n', stderr: '' });
    expect((await run('tc', ['qdisc', 'show'])).code).toBe(1);
  });

  it('says which package to install when the tool is missing', async () => {
    const run = privilegedRunner({ env: { PATH: '', LOCKSTEP_NFT: '/nonexistent/nft' } });
    const missing = await run('nft', ['list', 'tables']);
    expect(missing.code).toBe(NOT_INSTALLED);
    expect(missing.stderr).toContain('install nftables');
  });
});

describe('privileged commands of an agent that is not root', () => {
  it('go through `sudo -n`, never a password prompt', () => {
    expect(privilegedArgv(['/usr/sbin/tc', 'qdisc', 'show'], 0)).toEqual(['/usr/sbin/tc', 'qdisc', 'show']);
    expect(privilegedArgv(['/usr/sbin/tc', 'qdisc', 'show'], 1000)).toEqual(['sudo', '-n', '--', '/usr/sbin/tc', 'qdisc', 'show']);
  });

  it('explain a refusal by sudo or by the kernel with what to do', () => {
    const sudo = refusalOf({ code: 1, stdout: '', stderr: 'sudo: a password is required\n' }, 'tc', 1000);
    expect(sudo).toBe('tc needs root, and this agent runs as uid 1000 without passwordless sudo for it: allow it (a sudoers rule with NOPASSWD), or log in as root');
    expect(refusalOf({ code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted\n' }, 'tc', 0)).toMatch(/^tc needs root \(CAP_NET_ADMIN\)/);
    expect(refusalOf({ code: 2, stdout: '', stderr: 'Error: Specified qdisc kind is unknown.\n' }, 'tc', 0)).toBeUndefined();
  });
});

describe('the undo journal', () => {
  it('keeps undo commands until they are forgotten or run, in order, by whoever finds the instance dead', async () => {
    const dir = tempDir('journal');
    const marks = join(dir, 'marks');
    // `nft` and `tc` stand for a shell here: each undo command appends its name to a file.
    const run = privilegedRunner({ env: { PATH: '', LOCKSTEP_NFT: '/bin/sh', LOCKSTEP_TC: '/bin/sh' }, uid: 0 });
    const mark = (tool: 'tc' | 'nft', name: string) => ({ tool, args: ['-c', `echo ${name} >> ${marks}`] });
    await Promise.all([
      recordUndo(dir, 'netem', [mark('tc', 'netem-1'), mark('tc', 'netem-2')]),
      recordUndo(dir, 'partition', [mark('nft', 'partition')]),
      recordUndo(dir, 'healed', [mark('nft', 'healed')]),
    ]);
    await forgetUndo(dir, 'healed');
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'privileged-undo.json'), 'utf8')) as object).sort()).toEqual(['netem', 'partition']);
    expect(await runUndoJournal(dir, run)).toBe(2);
    expect(readFileSync(marks, 'utf8')).toBe('netem-1\nnetem-2\npartition\n');
    expect(existsSync(join(dir, 'privileged-undo.json'))).toBe(false);
    expect(await runUndoJournal(dir, run)).toBe(0);
  });
});

describe('privileged commands held ready', () => {
  it('start ahead and run their input when given it; a warm one holds the next at once', async () => {
    const env = { PATH: '', LOCKSTEP_NFT: '/bin/cat' };
    const held = holdPrivileged('nft', [], { env, uid: 0 });
    expect(await held.run('add table inet x\n')).toEqual({ code: 0, stdout: 'add table inet x\n', stderr: '' });
    const warm = warmPrivileged('nft', [], { env, uid: 0 });
    expect((await warm.run('one\n')).stdout).toBe('one\n');
    expect((await warm.run('two\n')).stdout).toBe('two\n');
    warm.cancel();
    expect(await holdPrivileged('nft', [], { env: { PATH: '', LOCKSTEP_NFT: '/nonexistent/nft' } }).run('x')).toMatchObject({ code: NOT_INSTALLED });
  });
});
