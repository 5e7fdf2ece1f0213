/**
 * The emulated cloud for tests of the AWS path: moto_server for EC2, IAM, SSM and STS, a second one
 * for S3 (moto serves one request at a time per core: the store's traffic gets its own), the
 * instance runner that boots the instances, image profiles registered as AMIs, and a Node.js
 * mirror. lockstep runs against it unchanged, with only what any AWS user can set
 * (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, keys, a region) and where to download Node.js from
 * (`LOCKSTEP_NODE_MIRROR`).
 *
 * ```ts
 * const cloud = await startEmulatedCloud({ root, images: { ubuntu: { image: IMAGES.ubuntu2404, regions: ['eu-west-1'] } } });
 * lockstep(['run', 'spec.yaml'], { cwd, env: cloud.env });   // spec: provider.ami = cloud.ami('ubuntu', 'eu-west-1')
 * await cloud.stop();
 * ```
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { registerImage, type ImageProfile } from './images.ts';
import { startInstanceRunner, type InstanceRunner } from './instance-runner.ts';
import { startMoto, type Moto } from './moto.ts';
import { startNodeMirror, type NodeMirror } from './node-mirror.ts';

export interface EmulatedCloudOptions<Names extends string> {
  readonly root: string;
  /** Images to register as AMIs, by a name of the test's, each in the regions given. */
  readonly images?: Readonly<Record<Names, { readonly image: ImageProfile; readonly regions: readonly string[] }>>;
  /** Regions whose instances never boot (a bare moto_server). */
  readonly bareRegions?: readonly string[];
  readonly shutdownGraceMs?: number;
}

export interface EmulatedCloud<Names extends string> {
  readonly moto: Moto;
  /** The S3 endpoint. */
  readonly s3: Moto;
  readonly runner: InstanceRunner;
  readonly mirror: NodeMirror;
  /** The environment of a `lockstep` command on this cloud (the caller adds its own folders). */
  readonly env: Readonly<Record<string, string>>;
  /** AMI id of a registered image in a region. */
  ami(name: Names, region: string): string;
  stop(): Promise<void>;
}

export async function startEmulatedCloud<Names extends string = never>(options: EmulatedCloudOptions<Names>): Promise<EmulatedCloud<Names>> {
  if (process.getuid?.() !== 0) {
    throw new Error('The emulated cloud boots each instance in PID and mount namespaces of its own, which needs root: run the AWS tests as root (CI does)');
  }
  mkdirSync(options.root, { recursive: true });
  const [moto, s3] = await Promise.all([startMoto(), startMoto({ warm: 's3' })]);
  const stops: Array<() => Promise<void>> = [() => moto.stop(), () => s3.stop()];
  try {
    const mirror = await startNodeMirror(join(options.root, 'node-mirror'));
    stops.unshift(() => mirror.close());
    const amis = new Map<string, Record<string, string>>();
    const profiles = new Map<string, ImageProfile>();
    for (const [name, { image, regions }] of Object.entries(options.images ?? {}) as Array<[Names, { image: ImageProfile; regions: readonly string[] }]>) {
      const ids = await registerImage(moto, image, regions);
      amis.set(name, ids);
      for (const id of Object.values(ids)) profiles.set(id, image);
    }
    const runner = await startInstanceRunner({
      moto,
      s3Endpoint: s3.endpoint,
      root: join(options.root, 'machines'),
      imageOf: (imageId) => profiles.get(imageId),
      bareRegions: options.bareRegions,
      shutdownGraceMs: options.shutdownGraceMs,
    });
    stops.unshift(() => runner.stop());
    return {
      moto,
      s3,
      runner,
      mirror,
      env: { ...moto.env, AWS_ENDPOINT_URL_S3: s3.endpoint, LOCKSTEP_NODE_MIRROR: mirror.url },
      ami(name, region) {
        const id = amis.get(name)?.[region];
        if (!id) throw new Error(`No image ${name} registered in ${region}`);
        return id;
      },
      stop: () => stopAll(stops),
    };
  } catch (error) {
    await stopAll(stops);
    throw error;
  }
}

async function stopAll(stops: ReadonlyArray<() => Promise<void>>): Promise<void> {
  for (const stop of stops) await stop().catch(() => {});
}
