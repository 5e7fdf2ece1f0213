import { randomBytes } from 'node:crypto';

/** `<name>-<UTC yyyymmdd-hhmmss>-<4 hex>`: sortable by time, unique, valid as an EC2 tag and S3 key. */
export function newRunId(name: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40)}-${stamp}-${randomBytes(2).toString('hex')}`;
}
