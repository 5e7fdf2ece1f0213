/**
 * One emulated EC2 machine: a process tree in PID and mount namespaces of its own (root needed).
 *
 * - Its first process mounts the machine's own disk folders over `/opt` and `/root`, runs the
 *   user-data with bash (when the image runs user-data) into `console.log`, as cloud-init would,
 *   then stays up until the machine is powered off or terminated.
 * - Its PATH holds only the image's commands, and stand-ins for `shutdown` and `poweroff` that ask
 *   the hypervisor (the instance runner, over loopback with bash's /dev/tcp) to power the machine
 *   off, now or in N minutes, as systemd's would.
 * - Ending it is EC2's: every process gets SIGTERM (the OS shutting down), and after the grace
 *   period the namespace is killed, whatever runs in it, in whichever process group.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { ImageProfile } from './images.ts';
import { isZombie } from '../proc.ts';

export interface MachineOptions {
  readonly id: string;
  /** The machine's folder: disk, image PATH, user-data, console. */
  readonly dir: string;
  readonly image: ImageProfile;
  /** The instance's user-data, decoded. */
  readonly userData: string;
  /** Environment of the machine's processes besides PATH and HOME. */
  readonly env: Readonly<Record<string, string>>;
  /** Port of the hypervisor on 127.0.0.1 (power requests). */
  readonly hypervisorPort: number;
}

export class Machine {
  readonly consoleLog: string;
  /** The machine's /opt and /root as this machine sees them. */
  readonly opt: string;
  readonly root: string;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private ended = false;

  constructor(readonly options: MachineOptions) {
    const { dir, image } = options;
    this.opt = join(dir, 'disk', 'opt');
    this.root = join(dir, 'disk', 'root');
    this.consoleLog = join(dir, 'console.log');
    const bin = join(dir, 'image', 'bin');
    for (const folder of [this.opt, this.root, bin]) mkdirSync(folder, { recursive: true });
    installImage(bin, image, options, dir);
    writeFileSync(join(dir, 'user-data'), options.userData, { mode: 0o700 });
    writeFileSync(join(dir, 'init'), INIT, { mode: 0o700 });
    writeFileSync(this.consoleLog, '');
    this.child = spawn(
      // util-linux's, found on this machine's PATH (the machine's own PATH has only its image's commands).
      hostPath('unshare') || 'unshare',
      ['--mount', '--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private', '/bin/bash', join(dir, 'init'), dir, image.runsUserData === false ? 'no' : 'yes'],
      { cwd: dir, env: { ...options.env, PATH: bin, HOME: '/root', LANG: 'C.UTF-8' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let stderr = '';
    this.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    this.child.once('error', (error) => (stderr += String(error)));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.ended = true;
        if (code !== null && code !== 0 && !stderr.includes('Killed')) writeFileSync(join(dir, 'machine-error.log'), `machine exited ${code}: ${stderr}`);
        resolve();
        void signal;
      }),
    );
  }

  get running(): boolean {
    return !this.ended;
  }

  /**
   * Every process of the machine (host pids): its first process and all below it. In a PID
   * namespace an orphan is adopted by the namespace's first process, so the tree holds them all.
   */
  processes(): number[] {
    const init = this.initPid();
    if (init === undefined) return [];
    const found: number[] = [];
    const queue = [init];
    while (queue.length > 0) {
      const pid = queue.pop()!;
      found.push(pid);
      queue.push(...childrenOf(pid));
    }
    return found;
  }

  /**
   * Powers the machine off as EC2 does: SIGTERM to every process but the first, up to `graceMs`
   * for them to end, then the whole namespace is killed.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.ended) return;
    const init = this.initPid();
    const others = () => this.processes().filter((pid) => pid !== init && !isZombie(pid));
    for (const pid of others()) signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && others().length > 0) await delay(100);
    signal(this.child.pid!, 'SIGKILL');
    await this.exited;
  }

  /** Host pid of the machine's first process (the child of `unshare`). */
  private initPid(): number | undefined {
    return this.child.pid === undefined ? undefined : childrenOf(this.child.pid)[0];
  }
}

/** The machine's first process: its own mounts, the user-data as cloud-init runs it, then up until the end. */
const INIT = `# $1: the machine's folder; $2: run the user-data (yes/no)
/bin/mount --bind "$1/disk/opt" /opt && /bin/mount --bind "$1/disk/root" /root || exit 97
cd /
if [ "$2" = yes ]; then
  /bin/bash "$1/user-data" > "$1/console.log" 2>&1 < /dev/null
  echo "cloud-init: user-data exited with status $?" >> "$1/console.log"
fi
exec /bin/sleep infinity
`;

const hostPaths = new Map<string, string>();
/** Where this machine has a command (asked once per command: a machine boots without blocking the runner). */
function hostPath(command: string): string {
  let path = hostPaths.get(command);
  if (path === undefined) {
    path = spawnSync('bash', ['-c', 'type -P "$1"', 'bash', command], { encoding: 'utf8' }).stdout.trim();
    hostPaths.set(command, path);
  }
  return path;
}

function installImage(bin: string, image: ImageProfile, options: MachineOptions, dir: string): void {
  // Stand-ins first, each a new file (`wx`: never written through a link to this machine's own commands).
  const script = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/bash\n${body}`, { mode: 0o755, flag: 'wx' });
  script('shutdown', shutdownStandIn(options.id, options.hypervisorPort));
  script('poweroff', 'exec "$(dirname "$0")/shutdown" -h now\n');
  if (image.architecture === 'arm64') script('uname', `if [ "$1" = -m ]; then echo aarch64; else exec ${hostPath('uname')} "$@"; fi\n`);
  const recorder = (name: string, what: string) =>
    script(name, `echo "$(date +%s) ${name} $*" >> "${join(dir, `${name}.calls`)}"\necho "${name}: ${what}" >&2\nexit 1\n`);
  if (image.packageManager) recorder(image.packageManager, 'no repository is reachable from the emulated cloud');
  if (image.awsCli) recorder('aws', 'the AWS CLI is not emulated');
  // Then this machine's own commands that the image has, as links.
  for (const command of [...image.commands, ...(image.node ? ['node'] : [])]) {
    if (existsSync(join(bin, command))) continue;
    const path = hostPath(command);
    if (!path.startsWith('/')) throw new Error(`The image ${image.name} needs \`${command}\`, which this machine does not have`);
    symlinkSync(path, join(bin, command));
  }
  chmodSync(bin, 0o755);
}

/** shutdown(8) on the machine: `now` or `+minutes`, `-c` to cancel, as systemd's. */
function shutdownStandIn(id: string, port: number): string {
  return `# shutdown of an emulated EC2 machine: asks the hypervisor to power it off.
when='' cancel=0
for arg in "$@"; do
  case "$arg" in
    -c) cancel=1 ;;
    -r | --reboot) echo "shutdown: reboot is not emulated" >&2; exit 1 ;;
    -*) ;;
    *) [ -n "$when" ] || when=$arg ;;
  esac
done
case "\${when:-+1}" in
  now) seconds=0 ;;
  +[0-9]*) seconds=$(( \${when#+} * 60 )) ;;
  *) echo "shutdown: only now and +minutes are emulated, not $when" >&2; exit 1 ;;
esac
query="in=$seconds"
[ "$cancel" = 1 ] && query=cancel=1
exec 3<> /dev/tcp/127.0.0.1/${port} || exit 1
printf 'POST /power/${id}?%s HTTP/1.0\\r\\nContent-Length: 0\\r\\n\\r\\n' "$query" >&3
read -r _ status _ <&3
[ "$status" = 200 ] || { echo "shutdown: the hypervisor answered $status" >&2; exit 1; }
[ "$cancel" = 1 ] || [ "$seconds" = 0 ] || echo "Shutdown scheduled in $((seconds / 60)) min, use 'shutdown -c' to cancel."
`;
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}
