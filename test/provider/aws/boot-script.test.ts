/**
 * The pieces of the boot script (src/provider/aws/boot.sh) that must be exactly right on every
 * image, run with bash: its SigV4 signatures equal the AWS SDK signer's for the same request, and
 * its key encoding is S3's. (The whole boot runs in the emulated cloud: test/e2e/aws-emulated.)
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { Sha256 } from '../../helpers/sha256.ts';

const BOOT_SH = fileURLToPath(new URL('../../../src/provider/aws/boot.sh', import.meta.url));

/** Runs a function of boot.sh (sourced, so that its main does not run) and prints what it prints. */
function bootFunction(name: string, ...args: string[]): string {
  return execFileSync('bash', ['-c', `source "$1"; shift; ${name} "$@"`, 'bash', BOOT_SH, ...args], { encoding: 'utf8' });
}

/** S3's encoding of a key path: every byte but unreserved characters and `/`. */
const s3Path = (key: string) =>
  key
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');

describe('boot.sh', () => {
  it('encodes key paths as S3 signs them', () => {
    for (const key of ['lockstep/agents/0.1.0-abc/agent.mjs', 'my prefix/runs/r 1/boot/i-0.log', "odd/(keys)!*'~_.-+=&,;:@$", 'ünïcødé/ключ/€']) {
      expect(bootFunction('uri_encode_path', key), key).toBe(s3Path(key));
    }
  });

  it('signs a store request exactly as the AWS SDK signer does', async () => {
    const cases = [
      { method: 'GET', host: 'lockstep-123456789012-us-east-1.s3.us-east-1.amazonaws.com', key: 'lockstep/agents/0.1.0-0123/agent.mjs', region: 'us-east-1', token: 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with+odd=chars' },
      { method: 'PUT', host: '127.0.0.1:4566', key: 'bucket-name/prefix/runs/r-1/boot/i-0abc.log', region: 'eu-west-1', token: '' },
      { method: 'GET', host: 's3.ap-south-1.amazonaws.com', key: 'my.dotted.bucket/a b/c+d.tar.gz', region: 'ap-south-1', token: 'short' },
    ];
    const credentials = { accessKeyId: 'ASIAEXAMPLEKEYID0001', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLE:KEY' };
    for (const c of cases) {
      const date = new Date('2030-05-06T07:08:09Z');
      const amzDate = '20300506T070809Z';
      const path = `/${s3Path(c.key)}`;
      const signer = new SignatureV4({
        service: 's3',
        region: c.region,
        credentials: { ...credentials, ...(c.token ? { sessionToken: c.token } : {}) },
        sha256: Sha256,
        uriEscapePath: false,
        applyChecksum: false,
      });
      const signed = await signer.sign(
        { method: c.method, protocol: 'https:', hostname: c.host, path, headers: { host: c.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } },
        { signingDate: date },
      );
      const fromBash = bootFunction('sigv4_authorization', c.method, c.host, path, amzDate, c.region, credentials.accessKeyId, credentials.secretAccessKey, c.token);
      expect(fromBash, `${c.method} ${c.host}${path}`).toBe(signed.headers.authorization);
    }
  });
});
