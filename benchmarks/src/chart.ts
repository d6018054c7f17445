/**
 * The report's chart as a self-contained SVG, written by hand (no browser, no plotting library):
 * median throughput and p99 latency per scenario on log scales, coloured by role (ours, raw
 * ceiling, Emmett), with each target marked on the figure it names (a target on the whole-window
 * rate or on the median latency has no bar, so it is named in text instead); below them,
 * throughput and p99 over time for every scenario measured in one continuous window.
 */
import type { BenchmarkReport, ScenarioResult } from './report.js';

const WIDTH = 1200;
const ROW_HEIGHT = 18;
const LABEL_WIDTH = 230;
const PANEL_GAP = 190;
const PANEL_WIDTH = (WIDTH - LABEL_WIDTH - PANEL_GAP - 190) / 2;
const SERIES_HEIGHT = 170;
const COLOURS: Record<ScenarioResult['role'], string> = { ours: '#2563eb', 'raw-ceiling': '#6b7280', peer: '#ea580c' };
const TARGET_COLOUR = '#dc2626';

/** Renders the report's chart. */
export function renderChart(report: BenchmarkReport): string {
  const parts: string[] = [];
  let y = 30;
  parts.push(text(20, y, `Ledgerkit benchmarks — ${report.mode} run, ${report.startedAt}`, { size: 16, weight: 'bold' }));
  y += 18;
  const server = report.postgres?.server;
  parts.push(
    text(
      20,
      y,
      `${report.machine.cpus} × ${report.machine.model}, Node ${report.machine.node}, load ${report.machine.loadAverage1mAtStart.toFixed(2)} at start` +
        (server === undefined ? '' : `; ${server.version.split(' on ')[0] ?? server.version} (${server.source}), synchronous_commit=${server.synchronousCommit}`),
      { size: 11, fill: '#374151' },
    ),
  );
  y += 16;
  parts.push(legend(20, y));
  y += 24;

  const throughputX = LABEL_WIDTH;
  const latencyX = LABEL_WIDTH + PANEL_WIDTH + PANEL_GAP;
  parts.push(text(throughputX, y, 'median throughput, ops/s (log scale)', { size: 12, weight: 'bold' }));
  parts.push(text(latencyX, y, 'p99 latency of one operation (log scale)', { size: 12, weight: 'bold' }));
  y += 10;

  const scenarios = report.scenarios;
  const rates = scenarios.filter(showsThroughput).map((s) => s.opsPerSecMedian);
  const latencies = scenarios.map((s) => s.latencyMs.p99).filter((v) => v > 0);
  const targetRates = scenarios.flatMap((s) => {
    const target = medianRateTarget(s);
    return target === undefined ? [] : [target];
  });
  const targetLatencies = scenarios.flatMap((s) => (s.target?.latencyP99MsMax === undefined ? [] : [s.target.latencyP99MsMax]));
  const rateScale = logScale([...rates, ...targetRates], PANEL_WIDTH);
  const latencyScale = logScale([...latencies, ...targetLatencies], PANEL_WIDTH);
  const axisTop = y;
  const rowsHeight = report.groups.reduce((sum, g) => sum + ROW_HEIGHT * (1 + scenarios.filter((s) => s.group === g.id).length), 0);
  parts.push(axis(throughputX, axisTop, rowsHeight, rateScale, (v) => compact(v)));
  parts.push(axis(latencyX, axisTop, rowsHeight, latencyScale, (v) => compactMs(v)));

  y = axisTop + 4;
  for (const group of report.groups) {
    y += ROW_HEIGHT;
    parts.push(text(20, y - 4, group.title, { size: 11, weight: 'bold', fill: '#111827' }));
    for (const s of scenarios.filter((x) => x.group === group.id)) {
      y += ROW_HEIGHT;
      const barY = y - ROW_HEIGHT + 4;
      const colour = COLOURS[s.role];
      const judged = s.target === null || s.meetsTarget !== null;
      const mark = s.meetsTarget === false ? ' ✗' : s.meetsTarget === true ? ' ✓' : judged ? '' : ' –';
      parts.push(text(28, y - 5, `${s.name}${mark}`, { size: 11, fill: s.meetsTarget === false ? TARGET_COLOUR : '#111827' }));
      if (showsThroughput(s)) {
        const w = Math.max(1, rateScale.x(s.opsPerSecMedian));
        parts.push(rect(throughputX, barY, w, ROW_HEIGHT - 7, colour));
        // The bar is the median: a target on the whole-window rate (basis overall) is not drawn on it, only named with that rate.
        const overallTarget = s.target?.opsPerSec !== undefined && s.target.basis === 'overall' ? s.target.opsPerSec : undefined;
        const overallNote = overallTarget === undefined ? '' : ` · target ${compact(overallTarget)}/s on the whole window: ${compact(s.opsPerSecOverall)}`;
        parts.push(text(throughputX + w + 4, y - 5, `${compact(s.opsPerSecMedian)}${overallNote}`, { size: 10, fill: '#374151' }));
        const medianTarget = medianRateTarget(s);
        if (medianTarget !== undefined) parts.push(targetTick(throughputX + rateScale.x(medianTarget), barY));
      } else {
        parts.push(text(throughputX + 4, y - 5, `n/a (${s.opsUnit})`, { size: 10, fill: '#6b7280' }));
      }
      const w = Math.max(1, latencyScale.x(s.latencyMs.p99));
      parts.push(rect(latencyX, barY, w, ROW_HEIGHT - 7, colour));
      // A target stated at a larger history than this run built is not judged: say so next to the figure.
      const history = s.details['historyEvents'];
      const note = judged ? '' : ` · target not judged${typeof history === 'number' ? ` (history ${history.toLocaleString('en-US')})` : ''}`;
      const p50Target = s.target?.latencyP50MsMax;
      const medianNote = p50Target === undefined ? '' : ` · target median ≤ ${compactMs(p50Target)}: ${compactMs(s.latencyMs.p50)}`;
      parts.push(text(latencyX + w + 4, y - 5, `${compactMs(s.latencyMs.p99)} per ${shortLatencyOf(s.latencyOf)}${medianNote}${note}`, { size: 10, fill: '#374151' }));
      // The bar is the p99: only a p99 target is drawn on it (a median target, e.g. the start-up's, has no bar here).
      const latencyTarget = s.target?.latencyP99MsMax;
      if (latencyTarget !== undefined) parts.push(targetTick(latencyX + latencyScale.x(latencyTarget), barY));
    }
  }
  y += 30;

  for (const s of scenarios.filter((x) => x.series !== null && x.series.length > 0)) {
    parts.push(seriesPanel(s, 20, y));
    y += SERIES_HEIGHT + 40;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

/** Throughput and p99 per interval of one continuous window: two lines on their own linear axes. */
function seriesPanel(s: ScenarioResult, x0: number, y0: number): string {
  const points = s.series ?? [];
  const plotX = x0 + 60;
  const plotW = WIDTH - plotX - 80;
  const plotY = y0 + 20;
  const plotH = SERIES_HEIGHT - 40;
  const maxRate = Math.max(1, ...points.map((p) => p.opsPerSec), s.target?.opsPerSec ?? 0) * 1.1;
  const maxP99 = Math.max(0.001, ...points.map((p) => p.p99Ms)) * 1.1;
  const lastSec = Math.max(1, ...points.map((p) => p.atSec));
  const px = (sec: number): number => plotX + (sec / lastSec) * plotW;
  const pyRate = (v: number): number => plotY + plotH - (v / maxRate) * plotH;
  const pyP99 = (v: number): number => plotY + plotH - (v / maxP99) * plotH;
  const out: string[] = [
    text(x0, y0 + 8, `${s.name}: throughput (blue, left axis) and p99 latency per ${shortLatencyOf(s.latencyOf)} (orange, right axis), per ${s.sampleOf}`, { size: 12, weight: 'bold' }),
    `<rect x="${plotX}" y="${plotY}" width="${plotW}" height="${plotH}" fill="none" stroke="#d1d5db"/>`,
  ];
  for (let i = 0; i <= 4; i += 1) {
    const v = (maxRate * i) / 4;
    out.push(text(plotX - 6, pyRate(v) + 4, compact(v), { size: 9, fill: '#2563eb', anchor: 'end' }));
    const l = (maxP99 * i) / 4;
    out.push(text(plotX + plotW + 6, pyP99(l) + 4, compactMs(l), { size: 9, fill: '#ea580c' }));
    if (i > 0 && i < 4) out.push(`<line x1="${plotX}" x2="${plotX + plotW}" y1="${pyRate(v).toFixed(1)}" y2="${pyRate(v).toFixed(1)}" stroke="#f3f4f6"/>`);
  }
  const tickEverySec = Math.max(1, Math.ceil(lastSec / 12));
  for (let sec = 0; sec <= lastSec; sec += tickEverySec) out.push(text(px(sec), plotY + plotH + 12, String(sec), { size: 9, fill: '#6b7280', anchor: 'middle' }));
  out.push(text(plotX + plotW / 2, plotY + plotH + 26, 'seconds into the window', { size: 9, fill: '#6b7280', anchor: 'middle' }));
  if (s.target?.opsPerSec !== undefined) {
    const ty = pyRate(s.target.opsPerSec);
    out.push(`<line x1="${plotX}" x2="${plotX + plotW}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="${TARGET_COLOUR}" stroke-dasharray="4 3"/>`);
    const basis = s.target.basis === 'overall' ? `, judged on the whole window's rate (${compact(s.opsPerSecOverall)}/s), not on each interval` : ', judged on the median interval';
    out.push(text(plotX + plotW - 4, ty - 3, `target ${compact(s.target.opsPerSec)}/s${basis}`, { size: 9, fill: TARGET_COLOUR, anchor: 'end' }));
  }
  const line = (values: readonly [number, number][], colour: string): string =>
    `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${values.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`;
  out.push(line(points.map((p) => [px(p.atSec), pyRate(p.opsPerSec)]), '#2563eb'));
  out.push(line(points.map((p) => [px(p.atSec), pyP99(p.p99Ms)]), '#ea580c'));
  return out.join('\n');
}

interface LogScale {
  readonly x: (value: number) => number;
  readonly ticks: readonly number[];
}

/** A log10 scale over whole decades covering `values`, `width` pixels wide. */
function logScale(values: readonly number[], width: number): LogScale {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  const low = Math.floor(Math.log10(Math.min(...(positive.length > 0 ? positive : [1]))));
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...(positive.length > 0 ? positive : [10])))));
  const ticks = Array.from({ length: high - low + 1 }, (_, i) => 10 ** (low + i));
  return { x: (value) => (value <= 0 ? 0 : ((Math.log10(value) - low) / (high - low)) * width), ticks };
}

function axis(x0: number, y0: number, height: number, scale: LogScale, label: (v: number) => string): string {
  return scale.ticks
    .map((tick) => {
      const x = x0 + scale.x(tick);
      return `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y0 + 4}" y2="${y0 + height + 8}" stroke="#e5e7eb"/>\n${text(x, y0 + height + 20, label(tick), { size: 9, fill: '#6b7280', anchor: 'middle' })}`;
    })
    .join('\n');
}

function legend(x: number, y: number): string {
  const entries: [string, string][] = [
    ['ours (Ledgerkit)', COLOURS.ours],
    ['raw ceiling (plain inserts, no checks)', COLOURS['raw-ceiling']],
    ['Emmett PostgreSQL event store', COLOURS.peer],
  ];
  let cx = x;
  const out: string[] = [];
  for (const [name, colour] of entries) {
    out.push(rect(cx, y - 9, 12, 10, colour), text(cx + 16, y, name, { size: 11 }));
    cx += 30 + name.length * 6.2;
  }
  out.push(`<line x1="${cx}" x2="${cx}" y1="${y - 11}" y2="${y + 2}" stroke="${TARGET_COLOUR}" stroke-width="2"/>`, text(cx + 6, y, 'target (✗ missed, ✓ met, – not judged)', { size: 11 }));
  return out.join('\n');
}

function targetTick(x: number, y: number): string {
  return `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y - 2}" y2="${y + ROW_HEIGHT - 3}" stroke="${TARGET_COLOUR}" stroke-width="2"/>`;
}

function rect(x: number, y: number, w: number, h: number, fill: string): string {
  return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h}" fill="${fill}" rx="1"/>`;
}

function text(x: number, y: number, content: string, style: { size?: number; weight?: string; fill?: string; anchor?: string } = {}): string {
  const attributes = [
    `x="${x.toFixed(1)}"`,
    `y="${y.toFixed(1)}"`,
    `font-size="${style.size ?? 12}"`,
    style.weight === undefined ? '' : `font-weight="${style.weight}"`,
    `fill="${style.fill ?? '#111827'}"`,
    style.anchor === undefined ? '' : `text-anchor="${style.anchor}"`,
  ].filter((a) => a !== '');
  return `<text ${attributes.join(' ')}>${escapeXml(content)}</text>`;
}

function escapeXml(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** A throughput target judged on the median (the bar the throughput panel draws), if the scenario has one. */
function medianRateTarget(s: ScenarioResult): number | undefined {
  return s.target?.opsPerSec !== undefined && s.target.basis !== 'overall' ? s.target.opsPerSec : undefined;
}

function showsThroughput(s: ScenarioResult): boolean {
  return s.opsUnit === 'transfers' && s.opsPerSecMedian > 0;
}

function shortLatencyOf(latencyOf: string): string {
  return latencyOf
    .replace(/ \(.*\)$/, '')
    .replace(/^batch of ([\d,]+) (transfers|operations)$/, 'batch')
    .replace(/^transfer, from its due time$/, 'transfer (from due time)')
    .replace(/^writer start-up$/, 'start-up');
}

function compact(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (value >= 1e3) return `${(value / 1e3).toPrecision(3)}k`;
  return value.toPrecision(3);
}

function compactMs(ms: number): string {
  if (ms >= 1_000) return `${(ms / 1_000).toPrecision(3)} s`;
  if (ms >= 1) return `${ms.toPrecision(3)} ms`;
  if (ms >= 0.001) return `${(ms * 1_000).toPrecision(3)} µs`;
  if (ms <= 0) return '0';
  return `${(ms * 1e6).toPrecision(3)} ns`;
}
