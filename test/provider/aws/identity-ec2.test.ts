import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ec2Identity, Ec2IdentityError } from '../../../src/agent/identity-ec2.ts';
import { encodeTagValue, TAG } from '../../../src/core/tags.ts';

const TOKEN = 'imds-token-123';

/** A tiny IMDSv2 stand-in on loopback: token PUT, then GETs that must carry the token. */
async function imdsStandIn(values: Record<string, string>, options: { silent?: boolean } = {}) {
  const requests: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').replace(/\/{2,}/g, '/');
    requests.push(`${req.method} ${path}`);
    if (options.silent) return; // never answers
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.writeHead(400).end();
      return void res.writeHead(200).end(TOKEN);
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== TOKEN) return void res.writeHead(401).end();
    const prefix = '/latest/meta-data/';
    const value = path.startsWith(prefix) ? values[path.slice(prefix.length)] : undefined;
    if (value === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(value);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const STORE = 's3://lockstep-bucket/lockstep?region=eu-west-1';

function instanceValues(extra: Record<string, string> = {}): Record<string, string> {
  return {
    'instance-id': 'i-0123456789abcdef0',
    'local-ipv4': '172.31.5.9',
    'public-ipv4': '198.51.100.7',
    'placement/region': 'eu-west-1',
    'placement/availability-zone': 'eu-west-1b',
    [`tags/instance/${TAG.runId}`]: 'run-42',
    [`tags/instance/${TAG.store}`]: encodeTagValue(STORE)!,
    [`tags/instance/${TAG.expiresAt}`]: '2030-01-01T02:00:00.000Z',
    [`tags/instance/${TAG.addressKind}`]: 'private',
    ...extra,
  };
}

describe('ec2Identity (IMDSv2)', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
    delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  });

  it('reads id, private address, region and zone from metadata, and the run from instance tags', async () => {
    const imds = await imdsStandIn(instanceValues());
    close = imds.close;
    const identity = await ec2Identity({ endpoint: imds.endpoint });
    expect(identity).toEqual({
      instanceId: 'i-0123456789abcdef0',
      address: '172.31.5.9',
      region: 'eu-west-1',
      zone: 'eu-west-1b',
      runId: 'run-42',
      store: STORE,
      expiresAt: new Date('2030-01-01T02:00:00.000Z'),
    });
    // The store locator holds `?`, outside the portable tag characters: it travels encoded.
    expect(instanceValues()[`tags/instance/${TAG.store}`]).toMatch(/^b64u:/);
    // IMDSv2: a token first, then every GET with it (the stand-in refuses GETs without).
    expect(imds.requests).toContain('PUT /latest/api/token');
    expect(imds.requests.filter((r) => r.startsWith('GET'))).toHaveLength(8);
  });

  it('uses the public address when the launch chose public addresses (run across regions), or when asked', async () => {
    const imds = await imdsStandIn(instanceValues({ [`tags/instance/${TAG.addressKind}`]: 'public' }));
    close = imds.close;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.endpoint;
    expect((await ec2Identity()).address).toBe('198.51.100.7');
    expect((await ec2Identity({ publicAddress: false })).address).toBe('172.31.5.9');
  });

  it('says how to fix an instance whose tags are not in metadata', async () => {
    const values = instanceValues();
    delete values[`tags/instance/${TAG.runId}`];
    const imds = await imdsStandIn(values);
    close = imds.close;
    const error = await ec2Identity({ endpoint: imds.endpoint }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ec2IdentityError);
    expect((error as Error).message).toBe(
      'Instance tag lockstep:run-id is not in instance metadata: launch with lockstep (it sets the tag and InstanceMetadataTags: enabled)',
    );
  });

  it('gives up after its timeout when the metadata service does not answer', async () => {
    const imds = await imdsStandIn({}, { silent: true });
    close = imds.close;
    const started = Date.now();
    const error = await ec2Identity({ endpoint: imds.endpoint, timeoutMs: 200, retries: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ec2IdentityError);
    expect((error as Error).message).toMatch(/Instance metadata did not answer/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
