import { afterAll, beforeAll } from 'vitest';
import { openLightStore, openStore } from '../../src/store/open.ts';
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

// Both S3 drivers: the AWS SDK's (the controller's) and the light one over node:http (the agent's).
for (const [driver, open] of [['sdk', openStore], ['http', openLightStore]] as const) {
  storeContract(
    `s3 (moto, ${driver} driver)`,
    async () => {
      const store = await open(server.locator(`t${++stores}/`));
      return { store, cleanup: () => store.dispose() };
    },
    { largeFileBytes: 8 * 1024 * 1024 + 123_457 },
  );
}
