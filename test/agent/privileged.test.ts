import { describe, expect, it } from 'vitest';
import { NOT_INSTALLED, privilegedRunner } from '../../src/agent/privileged.ts';

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
