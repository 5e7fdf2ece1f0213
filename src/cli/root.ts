import { defineCommand } from 'citty';
import { VERSION } from '../version.ts';

/** Every command of `lockstep`; each loads only when it is the one run. */
export const root = defineCommand({
  meta: {
    name: 'lockstep',
    version: VERSION,
    description: 'Run a distributed-protocol experiment on N machines at once, in lockstep, and bring the results home',
  },
  subCommands: {
    run: () => import('./commands/run.ts').then((m) => m.default),
    ls: () => import('./commands/inspect.ts').then((m) => m.ls),
    status: () => import('./commands/inspect.ts').then((m) => m.status),
    logs: () => import('./commands/inspect.ts').then((m) => m.logs),
    down: () => import('./commands/down.ts').then((m) => m.default),
    gc: () => import('./commands/gc.ts').then((m) => m.default),
    schema: () => import('./commands/schema.ts').then((m) => m.default),
    results: () => import('./commands/results.ts').then((m) => m.default),
    import: () => import('./commands/import.ts').then((m) => m.default),
    aws: () => import('./commands/aws.ts').then((m) => m.default),
  },
});

