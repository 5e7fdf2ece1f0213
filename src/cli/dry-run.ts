/**
 * `lockstep run --dry-run`: checks what `run` checks before it launches anything (every sweep
 * point, the store, the provider), then shows the plan: provider and isolation, network emulation,
 * which groups and params each rank gets, a sweep's points, the planned fault timeline. Launches
 * nothing, writes nothing.
 */
import { expandFaults } from '../controller/fault-timeline.ts';
import { checkRun } from '../controller/preflight.ts';
import { checkSweep, type SweepPlan } from '../controller/sweep.ts';
import { plannedFaultsTable } from '../results/faults.ts';
import { pointLabel } from '../results/matrix.ts';
import { renderTable } from '../results/tables.ts';
import { rankAssignments, resolveGroups, type RankAssignment } from '../spec/groups.ts';
import type { LoadedSpec } from '../spec/load.ts';
import type { NetworkSpec } from '../spec/network-plan.ts';
import type { Spec } from '../spec/schema.ts';
import { formatDuration } from '../util/duration.ts';
import { EXIT } from './errors.ts';
import { alignColumns, shownStore } from './output.ts';

export async function printDryRun(loaded: LoadedSpec, sweep: SweepPlan | undefined, options: { readonly store?: string; readonly json: boolean }): Promise<void> {
  const checked = sweep ? await checkSweep(sweep, { store: options.store }) : await checkRun(loaded, { store: options.store });
  const store = checked.store.locator;
  await checked.store.dispose();
  const { spec } = loaded;
  const points = sweep?.points.map(({ point, loaded: p }) => ({ point: point.index + 1, values: point.values, instances: p.spec.instances, ranks: ranksOf(p.spec) }));
  const faults = expandFaults(spec);
  const common = {
    instances: spec.instances,
    repeats: spec.repeats,
    store,
    network: spec.network ?? null,
    // A sweep's ranks are those of each point (its `instances`).
    ...(points ? { points } : { ranks: ranksOf(spec) }),
    faults: faults ?? null,
  };

  let providerJson: unknown;
  let providerText: string;
  let problems = false;
  if (spec.provider.kind === 'aws') {
    const { describeLaunchPlan } = await import('./commands/aws.ts');
    const described = await describeLaunchPlan(spec, { store: options.store });
    providerJson = described;
    providerText = described.text;
    problems = described.plan.problems.length > 0;
  } else if (spec.provider.kind === 'ssh') {
    const { describeSshPlan } = await import('../provider/ssh/plan.ts');
    const described = describeSshPlan(spec, spec.provider, options.store);
    providerJson = described.plan;
    providerText = described.text;
  } else {
    const netns = spec.provider.isolation === 'netns';
    providerJson = { provider: 'local', isolation: spec.provider.isolation };
    providerText = `Local: ${spec.instances} agent processes on this machine, each with its own ${netns ? 'network namespace and 198.18.x.y address (isolation: netns)' : 'loopback address (isolation: loopback)'}`;
  }
  if (problems) process.exitCode = EXIT.badInput;

  if (options.json) {
    console.log(JSON.stringify({ ...common, provider: spec.provider.kind, plan: providerJson }, null, 2));
    return;
  }
  const lines = [
    providerText,
    `Store: ${shownStore(store)} (it answers)`,
    `Repeats: ${spec.repeats}; timeouts: barrier ${formatDuration(spec.timeouts.barrier)}, setup ${formatDuration(spec.timeouts.setup)}, run ${formatDuration(spec.timeouts.run)}, instance ${formatDuration(spec.timeouts.instance)}${spec.keep ? '; keep: the instances stay up after the last repeat' : ''}`,
    `Network emulation: ${spec.network ? describeNetwork(spec.network) : 'none'}`,
  ];
  if (points) {
    lines.push(`Sweep of ${points.length} points, one run each (every point checked):`);
    for (const line of alignColumns([['POINT', 'VALUES', 'INSTANCES'], ...points.map((p) => [String(p.point), pointLabel(p.values), String(p.instances)])], [0, 2])) lines.push(`  ${line}`);
    for (const p of points) lines.push(`Ranks at point ${p.point} (${pointLabel(p.values)}):`, ...rankLines(p.ranks));
  } else {
    lines.push(`Ranks (${spec.instances} instances):`, ...rankLines(ranksOf(spec)));
  }
  if (faults) lines.push('', renderTable(plannedFaultsTable(faults)), '');
  lines.push(problems ? 'Nothing was launched: fix the problems above first.' : 'Nothing was launched.');
  console.log(lines.join('\n'));
}

function ranksOf(spec: Spec): RankAssignment[] {
  return rankAssignments(spec.params, resolveGroups(spec.groups, spec.instances), spec.instances);
}

function rankLines(rows: readonly RankAssignment[]): string[] {
  const params = (p: RankAssignment['params']) => Object.entries(p).map(([k, v]) => `${k}=${String(v)}`).join(' ') || '-';
  return alignColumns([['RANKS', 'GROUPS', 'PARAMS'], ...rows.map((r) => [r.ranks, r.groups.join(', ') || '-', params(r.params)])]).map((l) => `  ${l}`);
}

/** `delay 50 ms ± 5 ms, loss 1%, rate 10 Mbit/s; 2 overrides; latency between groups a, b`. */
export function describeNetwork(network: NetworkSpec): string {
  const impairment = (i: { delayMs?: number; jitterMs?: number; lossPercent?: number; rateBitsPerSecond?: number }) =>
    [
      i.delayMs !== undefined ? `delay ${formatDuration(i.delayMs)}${i.jitterMs ? ` ± ${formatDuration(i.jitterMs)}` : ''}` : '',
      i.lossPercent !== undefined ? `loss ${i.lossPercent}%` : '',
      i.rateBitsPerSecond !== undefined ? `rate ${formatRate(i.rateBitsPerSecond)}` : '',
    ]
      .filter(Boolean)
      .join(', ');
  const parts = [impairment(network) || 'no default impairment'];
  for (const o of network.overrides) parts.push(`${o.group !== undefined ? `group ${o.group}` : `ranks ${String(o.ranks)}`}: ${impairment(o) || 'none'}`);
  const rows = Object.keys(network.latency);
  if (rows.length > 0) parts.push(`latency matrix from groups ${rows.join(', ')}`);
  return parts.join('; ');
}

function formatRate(bitsPerSecond: number): string {
  for (const [unit, size] of [['Gbit/s', 1e9], ['Mbit/s', 1e6], ['kbit/s', 1e3]] as const) if (bitsPerSecond >= size) return `${+(bitsPerSecond / size).toFixed(2)} ${unit}`;
  return `${bitsPerSecond} bit/s`;
}
