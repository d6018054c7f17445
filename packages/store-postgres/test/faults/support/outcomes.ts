import { specFor, transferIdsOf, type LogAudit } from './workload.js';
import type { WriterLine } from './writer-protocol.js';

const CLOCK_MARGIN_MS = 20;

/** An acknowledgement: where the log holds the id (a linked group: each member). */
export interface Ack {
  readonly v: number;
  readonly m?: readonly number[];
}

/** What the writer processes reported, merged over processes and restarts. */
export class Outcomes {
  /** The first acknowledgement of each id. */
  readonly acks = new Map<string, Ack>();
  /** Ids refused by a business rule, with the code. */
  readonly rejected = new Map<string, string>();
  readonly sent = new Set<string>();
  readonly gaveUp = new Set<string>();
  /** Acknowledgements of one id that disagree about where it is. */
  readonly disagreements: string[] = [];
  /** Ids acknowledged more than once with `duplicate: false`, i.e. applied twice. */
  readonly appliedTwice: string[] = [];
  readonly #applied = new Set<string>();
  /** Errors that are not retriable: none is expected. */
  readonly fatalErrors: string[] = [];
  /** Acknowledgements that answered a retry with `duplicate: true`. */
  duplicates = 0;
  /** When each id was first acknowledged. */
  readonly #ackedAt = new Map<string, number>();
  /** Each rejection with the time its attempt was sent. */
  readonly #rejections: { readonly id: string; readonly sentAt: number }[] = [];

  /** Merges one process's report. */
  add(lines: readonly WriterLine[]): void {
    const sentAt = new Map<string, number>();
    for (const line of lines) {
      switch (line.e) {
        case 'sent':
          this.sent.add(line.id);
          sentAt.set(line.id, line.t);
          break;
        case 'ok': {
          const ack: Ack = line.m === undefined ? { v: line.v } : { v: line.v, m: line.m };
          const first = this.acks.get(line.id);
          this.#ackedAt.set(line.id, Math.min(line.t, this.#ackedAt.get(line.id) ?? Infinity));
          if (first === undefined) this.acks.set(line.id, ack);
          else if (JSON.stringify(first) !== JSON.stringify(ack)) this.disagreements.push(`${line.id}: ${JSON.stringify(first)} then ${JSON.stringify(ack)}`);
          if (line.dup) this.duplicates += 1;
          else if (this.#applied.has(line.id)) this.appliedTwice.push(line.id);
          else this.#applied.add(line.id);
          break;
        }
        case 'rejected':
          this.rejected.set(line.id, line.code);
          this.#rejections.push({ id: line.id, sentAt: sentAt.get(line.id) ?? Infinity });
          break;
        case 'error':
          if (!line.retriable) this.fatalErrors.push(`${line.id}: ${line.code}: ${line.message}`);
          break;
        case 'gave-up':
          this.gaveUp.add(line.id);
          break;
        default:
          break;
      }
    }
  }

  /**
   * Rejections of an id submitted after another process had acknowledged it: the rejecting
   * writer decided on a state that was already stale. The margin absorbs the small difference
   * between two processes' clocks.
   */
  staleRejections(): string[] {
    return this.#rejections
      .filter(({ id, sentAt }) => sentAt > (this.#ackedAt.get(id) ?? Infinity) + CLOCK_MARGIN_MS)
      .map(({ id, sentAt }) => `${id} rejected though sent ${(sentAt - (this.#ackedAt.get(id) ?? 0)).toFixed(1)} ms after it was acknowledged`);
  }

  /** Ids sent that have neither an acknowledgement nor a rejection yet: their outcome is unknown. */
  unknown(): string[] {
    return [...this.sent].filter((id) => !this.acks.has(id) && !this.rejected.has(id));
  }

  /**
   * Checks the reports against the log and returns every problem found: an acknowledged id must
   * be in the log at the acknowledged version(s), exactly once; an id only ever rejected must not
   * be in it; every workload transfer in the log must have been acknowledged; a linked group is
   * in the log whole, in consecutive versions, or not at all.
   */
  problemsWith(audit: LogAudit, setUpIds: (transferId: string) => boolean): string[] {
    const problems: string[] = [...audit.repeatedIds.map((id) => `transfer ${id} is in the log more than once`)];
    for (const [id, ack] of this.acks) {
      const spec = specFor(id);
      const expected = spec.kind === 'single' ? [ack.v] : (ack.m ?? []);
      const found = transferIdsOf(spec).map((transferId) => audit.versionOf.get(transferId));
      if (JSON.stringify(found) !== JSON.stringify(expected)) problems.push(`acknowledged ${id} at ${JSON.stringify(expected)}, the log has ${JSON.stringify(found)}`);
    }
    for (const id of this.rejected.keys()) {
      if (this.acks.has(id)) continue;
      const present = transferIdsOf(specFor(id)).filter((transferId) => audit.versionOf.has(transferId));
      if (present.length > 0) problems.push(`rejected ${id} is in the log: ${present.join(', ')}`);
    }
    const groups = new Map<string, number[]>();
    for (const [transferId, version] of audit.versionOf) {
      if (setUpIds(transferId)) continue;
      const member = /^(.*)\.(\d+)$/.exec(transferId);
      const id = member === null ? transferId : (member[1] as string);
      if (!this.acks.has(id)) problems.push(`transfer ${transferId} is in the log but ${id} was never acknowledged`);
      if (member !== null) groups.set(id, [...(groups.get(id) ?? []), version]);
    }
    for (const [id, versions] of groups) {
      const spec = specFor(id);
      const sorted = [...versions].sort((a, b) => a - b);
      const whole = spec.kind === 'linked' && sorted.length === spec.members.length && sorted.every((version, index) => version === (sorted[0] as number) + index);
      if (!whole) problems.push(`linked group ${id} is in the log partly or apart: versions ${sorted.join(', ')}`);
    }
    return problems;
  }
}
