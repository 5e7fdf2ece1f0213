import { defineCommand } from 'citty';
import { collectGarbage, type GcReport } from '../../controller/gc.ts';
import { jsonArg, repeatedOption } from '../shared-args.ts';

export default defineCommand({
  meta: {
    name: 'gc',
    description: 'End every local instance whose run is over or expired (and with --aws every lockstep EC2 instance past its expiry, in every region)',
  },
  args: {
    aws: { type: 'boolean', description: 'Also look at AWS: terminate lockstep EC2 instances past their expiry', default: false },
    region: { type: 'string', description: 'With --aws: only these regions (repeatable or comma-separated; default: every enabled region)', valueHint: 'region' },
    profile: { type: 'string', description: 'With --aws: the AWS profile to use', valueHint: 'name' },
    'dry-run': { type: 'boolean', description: 'Show what would be ended; end nothing', default: false },
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
  if (report.aws) {
    for (const i of report.aws.ended) lines.push(`aws: ${verb} ${i.id} of ${i.runId} in ${i.region ?? '?'} (expired ${i.expiresAt ?? '?'})`);
    for (const i of report.aws.withoutExpiry) lines.push(`aws: left ${i.id} of ${i.runId} in ${i.region ?? '?'} alone: it has no expiry tag`);
    lines.push(`aws: looked in ${report.aws.regions.length} region(s); ${report.aws.running} lockstep instance(s) running and not expired`);
  }
  if (lines.length === 0) lines.push('Nothing to clean up.');
  return lines.join('\n');
}
