import { createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * OpenSSH's known_hosts, as `ssh` reads it (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): one key a line,
 * `[marker] patterns keytype base64 [comment]`. A pattern is a host name, `[host]:port` for a port
 * other than 22, `*`/`?` wildcards, `!` to negate, or a hashed name `|1|salt|hmac-sha1`.
 */

export interface KnownHostKey {
  readonly type: string;
  readonly key: Buffer;
  readonly revoked: boolean;
}

export type HostKeyVerdict =
  | { readonly kind: 'known' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'changed'; readonly knownTypes: readonly string[] }
  | { readonly kind: 'revoked' };

export function defaultKnownHostsFile(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** The name a host goes by in known_hosts: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return port === 22 ? bare : `[${bare}]:${port}`;
}

/** The keys `file` holds for `name` (a `knownHostsName`). A missing file holds none. */
export function keysFor(file: string, name: string): KnownHostKey[] {
  if (!existsSync(file)) return [];
  const found: KnownHostKey[] = [];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) marker = fields.shift();
    const [patterns, type, base64] = fields;
    // Certificate authorities are not supported: their lines are left alone.
    if (!patterns || !type || !base64 || marker === '@cert-authority') continue;
    if (!patternsMatch(patterns, name)) continue;
    found.push({ type, key: Buffer.from(base64, 'base64'), revoked: marker === '@revoked' });
  }
  return found;
}

/** Whether `presented` (the host key blob the server showed) is the key `file` knows for `name`. */
export function checkHostKey(file: string, name: string, presented: Buffer): HostKeyVerdict {
  const keys = keysFor(file, name);
  if (keys.some((k) => k.revoked && k.key.equals(presented))) return { kind: 'revoked' };
  const good = keys.filter((k) => !k.revoked);
  if (good.some((k) => k.key.equals(presented))) return { kind: 'known' };
  const type = keyType(presented);
  // A key of a type the file has none of for this host is new, as OpenSSH sees it; a different key
  // of a known type means the host's key changed.
  const sameType = good.filter((k) => k.type === type);
  if (sameType.length > 0 || type === undefined) return good.length > 0 ? { kind: 'changed', knownTypes: [...new Set(good.map((k) => k.type))] } : { kind: 'unknown' };
  return { kind: 'unknown' };
}

/** Adds `name`'s key to `file` (what `StrictHostKeyChecking accept-new` does), making `~/.ssh` when missing. */
export function addHostKey(file: string, name: string, presented: Buffer): void {
  const type = keyType(presented);
  if (!type) throw new Error('cannot read the type of the host key');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // One short write with O_APPEND: concurrent connections never interleave their lines.
  appendFileSync(file, `${name} ${type} ${presented.toString('base64')}\n`, { mode: 0o600 });
}

/** The key types `file` knows for `name`, to offer them first when the connection is negotiated. */
export function knownKeyTypes(file: string, name: string): string[] {
  return [...new Set(keysFor(file, name).filter((k) => !k.revoked).map((k) => k.type))];
}

/** The type named at the start of an SSH public key blob (`ssh-ed25519`, …). */
export function keyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return undefined;
  return blob.subarray(4, 4 + length).toString('ascii');
}

function patternsMatch(patterns: string, name: string): boolean {
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('|1|')) {
      if (hashedMatch(pattern, name)) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    if (globMatch(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function hashedMatch(pattern: string, name: string): boolean {
  const [, , salt, hash] = pattern.split('|');
  if (!salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

function globMatch(pattern: string, name: string): boolean {
  // Only `*` and `?` are special: `[` and `]` of `[host]:port` are literal.
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(name);
}
