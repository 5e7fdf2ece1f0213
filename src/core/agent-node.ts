/**
 * The Node.js options every agent process starts with (local, SSH and EC2 alike): young-generation
 * semi-spaces of 1 MiB (Node 20's default is 16 MiB). The agent's peak memory on an S3 store drops
 * from about 69 MiB to about 65 MiB at no measurable CPU cost (`npm run bench`, section 4).
 * V8's optimising compilers stay on: without them (`--no-opt --no-maglev --no-sparkplug`) the peak
 * is about 58 MiB, but parsing one 1,000-key LIST page takes about 110 ms instead of 28 ms, and the
 * barrier's watcher parses ten of them per look at N=10,000. No `--max-old-space-size`, which would
 * end a large upload. Options on the command line, not in NODE_OPTIONS: the experiment's own
 * Node.js processes do not inherit them. Every Node.js ≥ 20 accepts them.
 */
export const AGENT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=1'];
