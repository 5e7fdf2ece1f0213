/** Who this agent is and where its run lives: all the agent knows of the machine it runs on. */
export interface Identity {
  readonly instanceId: string;
  readonly address: string;
  readonly region?: string;
  readonly zone?: string;
  readonly runId: string;
  /** Store locator. */
  readonly store: string;
  readonly expiresAt: Date;
  /** Folder for the artifact and per-repeat files. */
  readonly workDir: string;
  /** Ends this instance (EC2: power off, which terminates it; locally: exit the agent). */
  readonly endInstance: 'exit' | 'poweroff';
}

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

/** The local provider passes identity through the environment. */
export function environmentIdentity(env: NodeJS.ProcessEnv = process.env): Identity {
  const need = (name: string): string => {
    const value = env[name];
    if (!value) throw new IdentityError(`Missing ${name}: the agent is started by a lockstep provider, which sets it`);
    return value;
  };
  const expiresAt = new Date(need('LOCKSTEP_EXPIRES_AT'));
  if (Number.isNaN(expiresAt.getTime())) throw new IdentityError('LOCKSTEP_EXPIRES_AT is not a date');
  return {
    instanceId: need('LOCKSTEP_INSTANCE_ID'),
    address: need('LOCKSTEP_ADDRESS'),
    region: env.LOCKSTEP_REGION || undefined,
    runId: need('LOCKSTEP_RUN_ID'),
    store: need('LOCKSTEP_STORE'),
    expiresAt,
    workDir: need('LOCKSTEP_WORKDIR'),
    endInstance: 'exit',
  };
}

/** `LOCKSTEP_IDENTITY=ec2` reads instance metadata (IMDSv2); otherwise the environment. */
export async function resolveIdentity(env: NodeJS.ProcessEnv = process.env): Promise<Identity> {
  if (env.LOCKSTEP_IDENTITY === 'ec2') {
    const { ec2Identity } = await import('./identity-ec2.ts');
    const found = await ec2Identity();
    return { ...found, workDir: env.LOCKSTEP_WORKDIR || '/var/lib/lockstep', endInstance: 'poweroff' };
  }
  return environmentIdentity(env);
}
