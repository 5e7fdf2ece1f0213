import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../../src/util/seeded-random.ts';

/**
 * Folders of the seed's experiment in the seed's own layout and log format (as in
 * `shared/seed/results-sample`), for any N and protocol: `GroupSize<N+1>-ExpId<protocol>-<date>-atSize<k>/`
 * with `configuration.txt` and `Repeat<r>/logs/stdout/<i>.log`, the last rank being the blockchain
 * relay. Returns, beside the folder, the figures the seed's analysis prints for it, computed here
 * from the values written (not by lockstep).
 */

export interface SeedFolderOptions {
  /** DKG nodes; the folder has one more log, the relay's. */
  readonly nodes: number;
  readonly protocol: string;
  readonly repeats?: number;
  readonly seed?: number;
  readonly date?: string;
  readonly atSize?: number;
}

export interface SeedFigures {
  /** The worst node of the worst repeat, by adjusted = multicast + computation. */
  readonly worst: { readonly adjusted: number; readonly multicast: number; readonly computation: number };
  /** The largest value after `total data:` of any DKG node in any repeat. */
  readonly bandwidth: number;
}

export interface SeedFolder {
  readonly folder: string;
  readonly name: string;
  readonly logs: number;
  readonly expected: SeedFigures;
}

interface NodeValues {
  send: number;
  receive: number;
  computation: number;
  data: number;
}

export async function writeSeedFolder(root: string, options: SeedFolderOptions): Promise<SeedFolder> {
  const { nodes, protocol } = options;
  const repeats = options.repeats ?? 8;
  const rand = seededRandom(options.seed ?? nodes * 31 + protocol.length);
  const int = (low: number, high: number) => low + Math.floor(rand() * (high - low + 1));
  const name = `GroupSize${nodes + 1}-ExpId${protocol}-${options.date ?? '0428'}-atSize${options.atSize ?? 38}`;
  const folder = join(root, name);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'configuration.txt'), `network_size: ${nodes}\nprotocol: ${protocol}\n`);

  const scale = nodes / 16;
  const honest = protocol === 'normal';
  const values: NodeValues[][] = [];
  for (let r = 1; r <= repeats; r++) {
    values.push(
      Array.from({ length: nodes }, () => ({
        send: honest ? int(0, 3) : int(8, 45),
        receive: honest ? int(10_000, 10_030) : Math.round(int(80, 260) * scale),
        computation: Math.round(int(250, 460) * scale),
        data: Math.round((honest ? int(9_000, 20_000) : int(22_000, 48_000)) * scale),
      })),
    );
  }
  // The seed prints one worst node: make the largest adjusted time (and bandwidth) unique.
  const adjusted = (v: NodeValues) => v.send + v.receive + v.computation;
  for (;;) {
    const all = values.flat();
    const top = Math.max(...all.map(adjusted));
    const at = all.filter((v) => adjusted(v) === top);
    if (at.length === 1) break;
    at[0]!.computation++;
  }
  for (;;) {
    const all = values.flat();
    const top = Math.max(...all.map((v) => v.data));
    const at = all.filter((v) => v.data === top);
    if (at.length === 1) break;
    at[0]!.data++;
  }

  for (let r = 1; r <= repeats; r++) {
    const dir = join(folder, `Repeat${r}`, 'logs', 'stdout');
    await mkdir(dir, { recursive: true });
    for (let rank = 0; rank < nodes; rank++) await writeFile(join(dir, `${rank}.log`), nodeLog(values[r - 1]![rank]!, int));
    await writeFile(join(dir, `${nodes}.log`), relayLog(int));
  }

  const worstNode = values.flat().reduce((worst, v) => (adjusted(v) > adjusted(worst) ? v : worst));
  return {
    folder,
    name,
    logs: repeats * (nodes + 1),
    expected: {
      worst: { adjusted: adjusted(worstNode), multicast: worstNode.send + worstNode.receive, computation: worstNode.computation },
      bandwidth: Math.max(...values.flat().map((v) => v.data)),
    },
  };
}

function nodeLog(v: NodeValues, int: (low: number, high: number) => number): string {
  const deal = int(15, 90);
  const agree = int(200, 300);
  const lines: Array<[string, number]> = [
    ['time to deal', deal],
    ['time to dealSend', int(0, 3)],
    ['time to dealReceive', int(20_000, 20_120)],
    ['time to agree', agree],
    ['time to send multicast complaint', v.send],
    ['# complaints received in multicast', int(0, 120)],
    ['time to receive multicast complaint', v.receive],
    ['adjust time to finish multicast', v.send + v.receive + agree],
    ['time to wait after receiving all multicast complaints', int(1_000, 12_000)],
    ['time to verify multicast complaint', int(0, 2)],
    ['# complaints send in broadcast', int(0, 8)],
    ['time to broadcast complaint', int(1, 4)],
    ['time to broadcastReceive', int(20_050, 20_120)],
    ['time to receive relayed complaints from blockchain', int(30_000, 30_002)],
    ['# complaints received in broadcast', int(0, 60)],
    ['time to verify complaints from blockchain', int(0, 20)],
    ['time to compute pk, sk share and pk share', int(0, 2)],
    ['total time:', int(72_000, 72_040)],
    ['total idle cost:', int(1_000, 12_000)],
    ['protocol cost:', int(60_000, 71_000)],
    ['total communication cost:', int(60_000, 70_000)],
    ['total computation cost:', v.computation],
  ];
  const out = lines.flatMap(([label, value]) => [label, String(value)]);
  out.push(`generateKeys,1;deal,${deal};verifyMulticast,0;verifyBroadcast,${int(0, 20)};agree,${agree};`);
  const sent = int(0, 10_000);
  out.push('total data:', String(v.data), String(Math.floor(v.data * 0.9)), String(int(2, 40)));
  out.push('total send:', String(sent), String(Math.floor(sent * 0.85)), String(int(0, 20)));
  out.push('total receive:', String(v.data - sent), String(Math.floor((v.data - sent) * 0.9)), String(int(2, 20)));
  return out.join('\n') + '\n';
}

function relayLog(int: (low: number, high: number) => number): string {
  const data = int(300_000, 500_000);
  return [
    'blockchain took # ms to receive the first packet dealBlockchainRelay',
    String(int(100, 200)),
    'time to capture dealBlockchain',
    String(int(20_000, 20_030)),
    'time to send dealBlockchain',
    String(int(10, 40)),
    'time to relay in blockchain',
    String(int(20_000, 20_060)),
    'time to sync with multicast + agree',
    'blockchain took # ms to receive the first packet broadcastBlockchainRelay',
    String(int(90, 120)),
    'time to capture broadcastBlockchainRelay',
    String(int(20_000, 20_010)),
    'time to send broadcastBlockchainRelay',
    String(int(10, 20)),
    'time to relay broadcast complaints from blockchain',
    String(int(20_000, 20_030)),
    'total time:',
    String(int(72_000, 72_010)),
    'total data:',
    String(data),
    String(Math.floor(data * 0.92)),
    String(int(40, 60)),
    'total send:',
    String(Math.floor(data * 0.94)),
    String(Math.floor(data * 0.86)),
    String(int(20, 40)),
    'total receive:',
    String(Math.floor(data * 0.06)),
    String(Math.floor(data * 0.05)),
    String(int(15, 30)),
  ].join('\n') + '\n';
}
