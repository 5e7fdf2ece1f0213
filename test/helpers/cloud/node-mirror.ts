/**
 * A Node.js download mirror on loopback (nodejs.org/dist's layout: index.json, SHASUMS256.txt, the
 * Linux tarballs), for `LOCKSTEP_NODE_MIRROR`. Its "Node.js" is a small launcher of this machine's
 * own Node.js, packed as an official tarball is (`node-<version>-linux-<arch>/bin/node`): an
 * emulated machine can run it, and a boot moves kilobytes instead of 45 MB per instance.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { create as createTar } from 'tar';

export interface NodeMirror {
  /** The value for LOCKSTEP_NODE_MIRROR. */
  readonly url: string;
  readonly version: string;
  /** Paths asked for, in order. */
  readonly requests: readonly string[];
  /** Serves a damaged tarball from now on (its checksum no longer matches). */
  damage(): void;
  close(): Promise<void>;
}

export async function startNodeMirror(dir: string, version = 'v24.0.0'): Promise<NodeMirror> {
  const files = new Map<string, Buffer>();
  const sums: string[] = [];
  for (const platform of ['linux-x64', 'linux-arm64']) {
    const name = `node-${version}-${platform}`;
    const bin = join(dir, name, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
    chmodSync(join(bin, 'node'), 0o755);
    const tarball = join(dir, `${name}.tar.gz`);
    await createTar({ gzip: true, cwd: dir, file: tarball, portable: true }, [name]);
    const bytes = readFileSync(tarball);
    files.set(`/${version}/${name}.tar.gz`, bytes);
    sums.push(`${createHash('sha256').update(bytes).digest('hex')}  ${name}.tar.gz`);
  }
  files.set(`/${version}/SHASUMS256.txt`, Buffer.from(sums.join('\n') + '\n'));
  files.set(
    '/index.json',
    Buffer.from(
      JSON.stringify([
        { version: 'v25.1.0', files: ['linux-x64', 'linux-arm64'], lts: false },
        { version, files: ['linux-x64', 'linux-arm64', 'osx-arm64-tar'], lts: 'Krypton' },
        { version: 'v22.20.0', files: ['linux-x64', 'linux-arm64'], lts: 'Jod' },
      ]),
    ),
  );
  const requests: string[] = [];
  let damaged = false;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push(path);
    let body = files.get(path);
    if (!body) return void res.writeHead(404).end('not found');
    if (damaged && path.endsWith('.tar.gz')) body = Buffer.concat([body, Buffer.from('damage')]);
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    version,
    requests,
    damage: () => (damaged = true),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
