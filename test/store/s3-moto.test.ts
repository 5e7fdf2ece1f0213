import { afterAll, beforeAll } from 'vitest';
import { openStore } from '../../src/store/open.ts';
import { startMotoS3Server, type S3Server } from '../helpers/s3-server.ts';
import { storeContract } from './contract.ts';

// The same contract on moto's S3, which honours conditional writes as AWS S3 does (s3rver does not).
let server: S3Server;
let stores = 0;
beforeAll(async () => {
  server = await startMotoS3Server();
  Object.assign(process.env, server.env);
});
afterAll(async () => {
  await server?.stop();
});

storeContract(
  's3 (moto)',
  async () => {
    const store = await openStore(server.locator(`t${++stores}/`));
    return { store, cleanup: () => store.dispose() };
  },
  { largeFileBytes: 8 * 1024 * 1024 + 123_457 },
);
