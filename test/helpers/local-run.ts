import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runExperiment, type RunOutcome } from '../../src/controller/run.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { tempDir } from './temp.ts';

/**
 * A probe program for end-to-end runs: it prints what it was given (rank, N, address, params,
 * hosts file) so the test can check every node independently of lockstep's own records.
 */
const PROBE = `#!/bin/sh
echo "rank=$LOCKSTEP_RANK n=$LOCKSTEP_N address=$LOCKSTEP_ADDRESS repeat=$LOCKSTEP_REPEAT role=$1 argrank=$2 env_role=$LOCKSTEP_PARAM_ROLE"
cp "$LOCKSTEP_HOSTS_FILE" "$LOCKSTEP_OUTPUT_DIR/hosts.copy"
cp "$LOCKSTEP_HOSTS_JSON" "$LOCKSTEP_OUTPUT_DIR/hosts-json.copy"
echo "note from rank $LOCKSTEP_RANK" > notes.txt
echo "stderr of rank $LOCKSTEP_RANK" >&2
if [ "$LOCKSTEP_RANK" = "$3" ]; then exit 3; fi
`;

export interface ProbeRun {
  readonly outcome: RunOutcome;
  readonly dir: string;
  readonly home: string;
}

/** Runs the probe on the local provider with the given spec lines appended. */
export async function runProbe(options: { instances: number; repeats: number; failRank?: number; store?: string; extra?: string[] }): Promise<ProbeRun> {
  const dir = tempDir('run');
  const home = join(dir, 'home');
  mkdirSync(join(dir, 'app'));
  writeFileSync(join(dir, 'app', 'probe.sh'), PROBE);
  writeFileSync(
    join(dir, 'spec.yaml'),
    [
      'name: probe',
      `instances: ${options.instances}`,
      `repeats: ${options.repeats}`,
      'artifact: ./app',
      `run: sh probe.sh {{params.role}} {{rank}} ${options.failRank ?? -1}`,
      'collect: [notes.txt]',
      'params:',
      '  role: honest',
      'groups:',
      `  - ranks: "${options.instances / 2}-"`,
      '    params:',
      '      role: adversary',
      'startDelay: 500ms',
      'timeouts:',
      '  barrier: 60s',
      '  run: 30s',
      '  instance: 5m',
      ...(options.extra ?? []),
    ].join('\n'),
  );
  const loaded = loadSpec(join(dir, 'spec.yaml'));
  const outcome = await runExperiment({ loaded, store: options.store ?? join(dir, 'store'), home, pollIntervalMs: 200 });
  return { outcome, dir, home };
}
