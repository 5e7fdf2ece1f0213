// A bare process for the skew floor: it says "ready", reads the common time T from stdin, sleeps
// until T in the way `mode` names, and prints when it woke. Nothing else runs in it.
import { afterStart, expectWakers, preciseNow, sleepUntil } from '../../src/util/clock.ts';

const mode = process.argv[2] ?? 'timer';
// As the barrier tells an agent: how many processes on this machine wake at T.
expectWakers(Number(process.argv[3] ?? 1));
process.stdin.setEncoding('utf8');
let input = '';
process.stdin.on('data', (chunk: string) => {
  input += chunk;
  if (!input.includes('\n')) return;
  process.stdin.pause();
  const at = Number(input.trim());
  void wait(at).then((woke) => {
    process.stdout.write(`${JSON.stringify({ woke, at })}\n`);
    process.exit(0);
  });
});
process.stdout.write('ready\n');

async function wait(at: number): Promise<number> {
  if (mode === 'lockstep') {
    await sleepUntil(at);
    // Recorded as an agent records its start: after the wait returns.
    const woke = preciseNow();
    afterStart(0);
    return woke;
  }
  // A plain timer, woken by the event loop.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - preciseNow())));
  return preciseNow();
}
