import { defineCommand } from 'citty';
import { collectGarbage, type GcReport } from '../../controller/gc.ts';
import { formatBytes } from '../../results/format.ts';
import { jsonArg, repeatedOption } from '../shared-args.ts';

export default defineCommand({
  meta: {
    name: 'gc',
    description:
      'End every local instance whose run is over or expired (not those a run keeps) and remove the working folders of ended local runs; with --aws every lockstep EC2 instance past its expiry, in every region; with --ssh what ended runs left on the hosts of an inventory',
  },
  args: {
    aws: { type: 'boolean', description: 'Also look at AWS: terminate lockstep EC2 instances past their expiry', default: false },
    region: { type: 'string', description: 'With --aws: only these regions (repeatable or comma-separated; default: every enabled region)', valueHint: 'region' },
    profile: { type: 'string', description: 'With --aws: the AWS profile to use', valueHint: 'name' },
    ssh: { type: 'string', description: 'Also the hosts of this Ansible YAML inventory: end agents of runs that are over or expired, and remove what ended runs left (processes, folders, network emulation and fault rules)', valueHint: 'inventory' },
    'known-hosts': { type: 'string', description: 'With --ssh: the known-hosts file (default ~/.ssh/known_hosts)', valueHint: 'file' },
    jump: { type: 'string', description: 'With --ssh: a bastion to go through, user@host[:port]', valueHint: 'bastion' },
    'dry-run': { type: 'boolean', description: 'Show what would be ended and removed (and the space it would free); change nothing', default: false },
    json: jsonArg,
  },
  async run({ args, rawArgs }) {
    const regions = repeatedOption(rawArgs, 'region')
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter(Boolean);
    const report = await collectGarbage({
      dryRun: args['dry-run'],
      aws: args.aws ? { regions, ...(args.profile ? { profile: args.profile } : {}) } : false,
      ssh: args.ssh ? { inventory: args.ssh, ...(args['known-hosts'] ? { knownHosts: args['known-hosts'] } : {}), ...(args.jump ? { jump: args.jump } : {}) } : false,
    });
    console.log(args.json ? JSON.stringify(report, null, 2) : formatGcReport(report));
  },
});

export function formatGcReport(report: GcReport): string {
  const verb = report.dryRun ? 'would end' : 'ended';
  const lines: string[] = [];
  const { local } = report;
  for (const i of local.ended) lines.push(`local: ${verb} ${i.instanceId} of ${i.runId} (${i.reason})`);
  for (const p of local.leftovers) lines.push(`local: ${verb} process ${p.pid} left by ${p.instanceId || 'an agent'} of ${p.runId || 'a run'}`);
  for (const runId of local.forgotten) lines.push(`local: ${report.dryRun ? 'would forget' : 'forgot'} ${runId} (no agent left)`);
  for (const tag of local.networks) lines.push(`local: ${report.dryRun ? 'would remove' : 'removed'} network ls-${tag}-* (namespaces, bridge, relay)`);
  for (const k of local.kept) lines.push(`local: left ${k.instances} instance(s) of ${k.runId} up: the run keeps them (keep: true) until ${k.expiresAt}, or \`lockstep down ${k.runId}\``);
  for (const f of local.folders) lines.push(`local: ${report.dryRun ? 'would remove' : 'removed'} the working folder of ${f.runId} (${formatBytes(f.bytes)}): ${f.path}`);
  if (local.folders.length > 0) lines.push(`local: ${report.dryRun ? 'would free' : 'freed'} ${formatBytes(local.freedBytes)}`);
  if (report.aws) {
    for (const i of report.aws.ended) lines.push(`aws: ${verb} ${i.id} of ${i.runId} in ${i.region ?? '?'} (expired ${i.expiresAt ?? '?'})`);
    for (const i of report.aws.withoutExpiry) lines.push(`aws: left ${i.id} of ${i.runId} in ${i.region ?? '?'} alone: it has no expiry tag`);
    lines.push(`aws: looked in ${report.aws.regions.length} region(s); ${report.aws.running} lockstep instance(s) running and not expired`);
  }
  if (report.ssh) {
    for (const i of report.ssh.ended) lines.push(`ssh: ${verb} the agent of ${i.runId} on ${i.host} (${i.reason}) and removed its folder`);
    for (const i of report.ssh.removed) {
      const what = [i.processes > 0 ? `${i.processes} process(es)` : '', i.undone > 0 ? 'its network emulation or fault rules' : ''].filter(Boolean).join(' and ');
      lines.push(`ssh: ${report.dryRun ? 'would remove' : 'removed'} what ${i.instanceId} of ${i.runId} left on ${i.host}: its folder${what ? `, ${what}` : ''}`);
    }
    for (const u of report.ssh.unreachable) lines.push(`ssh: could not look at ${u.host}: ${u.error}`);
    lines.push(`ssh: looked at ${report.ssh.hosts} host(s); ${report.ssh.running} agent(s) of runs not over left running`);
  }
  if (lines.length === 0) lines.push('Nothing to clean up.');
  return lines.join('\n');
}
