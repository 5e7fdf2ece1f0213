import { z } from 'zod';

/** `user@host` or `user@host:port` (or `host`), like OpenSSH's ProxyJump. */
export const JUMP = /^(?:([^@\s:]+)@)?(\[[0-9a-fA-F:.]+\]|[^@\s:[\]]+)(?::(\d{1,5}))?$/;

/**
 * `provider: { kind: ssh, inventory: hosts.yaml, … }`: existing hosts, reached over SSH, listed in
 * an Ansible-compatible YAML inventory. See README "Bring your own machines (SSH)".
 */
export const sshProvider = z.strictObject({
  kind: z.literal('ssh'),
  inventory: z.string().min(1).describe('An Ansible YAML inventory (relative to the spec): `all: { hosts, vars, children }`'),
  hosts: z
    .string()
    .min(1)
    .optional()
    .describe('The inventory group (or host) whose hosts to use, in inventory order; default: every host (`all`)'),
  jump: z
    .string()
    .regex(JUMP, 'Expected a bastion as `user@host` or `user@host:port`')
    .optional()
    .describe('A bastion every connection goes through, like ProxyJump: `user@bastion` or `user@bastion:port`'),
  concurrency: z.number().int().positive().default(32).describe('At most this many hosts are connected to at once'),
  hostKeys: z
    .enum(['strict', 'accept-new'])
    .default('strict')
    .describe(
      "Host keys are checked against `knownHosts`: `strict` refuses a host that is not there; `accept-new` adds it (a changed key is refused either way)",
    ),
  knownHosts: z.string().min(1).optional().describe('The known-hosts file (default `~/.ssh/known_hosts`; relative to the spec)'),
  workDir: z
    .string()
    .min(1)
    .default('.lockstep')
    .describe("Where runs live on a host (relative to the login user's home); per host `lockstep_work_dir`"),
  node: z.string().min(1).default('node').describe('The Node.js (≥ 20) binary on the hosts; per host `lockstep_node`'),
  setup: z
    .string()
    .min(1)
    .optional()
    .describe(
      'A shell command run over SSH on every host before it is checked, as the login user (e.g. installing Node.js: `command -v node || sudo apt-get install -y nodejs`); limited by `timeouts.setup`',
    ),
});

export type SshProviderSpec = z.output<typeof sshProvider>;
