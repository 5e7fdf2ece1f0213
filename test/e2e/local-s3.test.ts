import { afterAll, beforeAll, describe } from 'vitest';
import { startS3Server, type S3Server } from '../helpers/s3-server.ts';
import { localRunSuite } from './local-run.ts';

describe('a local run with its store on an S3 server on loopback', () => {
  let server: S3Server;
  let runs = 0;
  beforeAll(async () => {
    server = await startS3Server();
    // The agents are child processes: they find the server's dummy credentials in the environment.
    Object.assign(process.env, server.env);
  });
  afterAll(async () => {
    await server?.stop();
  });
  localRunSuite(() => server.locator(`e2e-${++runs}`));
});
