/**
 * Prints the hottest functions of a V8 CPU profile (`node --cpu-prof`): self time and inclusive
 * time, by function and file. Given a folder, it reads the newest run's main-thread profile.
 *
 *   tsx src/profile-summary.ts results/profiles [topN]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const TOP_DEFAULT = 25;

const target = process.argv[2];
if (target === undefined) throw new Error('usage: profile-summary <profile.cpuprofile | folder> [topN]');
const top = Number(process.argv[3] ?? TOP_DEFAULT);
// `pnpm run bench:profile -- --only …` hands the extra arguments to this, the script's last command.
if (!Number.isInteger(top) || top < 1) throw new Error(`usage: profile-summary <profile.cpuprofile | folder> [topN]; topN must be a positive integer, not ${JSON.stringify(process.argv[3])}`);
const file = statSync(target).isDirectory() ? mainThreadProfile(target) : target;
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
console.log(`${file}\n${summarise(profile, top)}`);

/** The newest run's profile with the most non-idle time: the main thread, not the loader's. */
function mainThreadProfile(folder: string): string {
  const files = readdirSync(folder)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => path.join(folder, name));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${folder}`);
  const newest = Math.max(...files.map((f) => statSync(f).mtimeMs));
  // One run writes one profile per thread within a second or so.
  const run = files.filter((f) => newest - statSync(f).mtimeMs < 5_000);
  const busy = (f: string): number => {
    const { samples, timeDeltas, nodes } = JSON.parse(readFileSync(f, 'utf8')) as CpuProfile;
    const idle = new Set(nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
    return samples.reduce((sum, id, i) => (idle.has(id) ? sum : sum + (timeDeltas[i] ?? 0)), 0);
  };
  return run.reduce((best, f) => (busy(f) > busy(best) ? f : best));
}

function summarise(profile: CpuProfile, count: number): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const label = (node: ProfileNode): string => {
    const { functionName, url } = node.callFrame;
    return `${functionName === '' ? '(anonymous)' : functionName}  ${url.split('/').slice(-2).join('/')}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, index) => {
    const us = profile.timeDeltas[index] ?? 0;
    totalUs += us;
    const node = byId.get(id);
    if (node === undefined) return;
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
    // Count each function once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let current: ProfileNode | undefined = node; current !== undefined; current = byId.get(parentOf.get(current.id) ?? -1)) {
      const name = label(current);
      if (!seen.has(name)) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
      seen.add(name);
    }
  });
  const table = (title: string, values: Map<string, number>): string =>
    [
      title,
      ...[...values]
        .sort((a, b) => b[1] - a[1])
        .slice(0, count)
        .map(([name, us]) => `${((100 * us) / Math.max(totalUs, 1)).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`),
    ].join('\n');
  return [`total ${(totalUs / 1000).toFixed(0)} ms`, table('-- self time', self), table('-- inclusive time', inclusive)].join('\n\n');
}
