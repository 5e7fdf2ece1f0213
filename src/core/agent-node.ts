/**
 * The Node.js options every agent process starts with (local, SSH and EC2 alike). The agent waits
 * on the store and moves files; its hot paths (hashing, gzip, TLS) are native code. Without V8's
 * optimising compilers and with 1 MiB young-generation semi-spaces (Node 20's default is 16 MiB)
 * its peak memory on an S3 store drops from about 69 MiB to about 57.5 MiB, and on a folder store
 * from about 56 MiB to about 52.5 MiB (`npm run bench`, section 4). WebAssembly stays available
 * (Node's fetch needs it), so no `--jitless` or `--lite-mode`; and no `--max-old-space-size`,
 * which would end a large upload. Options on the command line, not in NODE_OPTIONS: the
 * experiment's own Node.js processes do not inherit them. Every Node.js ≥ 20 accepts them.
 */
export const AGENT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=1', '--no-opt', '--no-maglev', '--no-sparkplug'];
