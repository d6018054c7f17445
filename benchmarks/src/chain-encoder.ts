/**
 * Encodes a stream of commands exactly as the writer does — decide against the ledger's state,
 * evolve it, encode each event with `EventCodec.encode` (random event id, hash chained from the
 * previous event) — but without a writer or a store, so fixtures can append pre-encoded batches
 * directly and time only the append.
 */
import { randomUUID } from 'node:crypto';
import { CurrencyRegistry, decide, EventCodec, evolve, GENESIS_HASH, type LedgerCommand, type LedgerState, type StoredEvent } from '@ledgerkit/ledger-core';
import { FIXTURE_CONTEXT, FIXTURE_NOW_MS } from './ledger-fixture.js';
import { BENCH_TENANT_ID } from './raw-insert.js';

/** Where a chain starts. */
export interface ChainEncoderOptions {
  readonly ledgerId: string;
  /** The state commands are decided against; it is evolved as they are encoded. */
  readonly state: LedgerState;
  /**
   * Version of the stream's last event before the first one encoded here: 0 for a new stream.
   * It may differ from `state.version` when the state's own history is not in the stream.
   */
  readonly streamVersion?: number;
}

/** Decides, evolves and encodes commands into one hash-chained stream. */
export class ChainEncoder {
  readonly #codec = new EventCodec({ currencies: new CurrencyRegistry() });
  readonly #ledgerId: string;
  readonly #state: LedgerState;
  #streamVersion: number;
  #lastHash = GENESIS_HASH;

  constructor(options: ChainEncoderOptions) {
    this.#ledgerId = options.ledgerId;
    this.#state = options.state;
    this.#streamVersion = options.streamVersion ?? 0;
  }

  /** Version of the last event encoded. */
  get streamVersion(): number {
    return this.#streamVersion;
  }

  /** Hash of the last event encoded (the genesis hash before the first). */
  get lastHash(): string {
    return this.#lastHash;
  }

  /** Decides `command`, appends its encoded events to `out` and returns how many; throws if it is rejected. */
  encode(command: LedgerCommand, out: StoredEvent[]): number {
    const decision = decide(command, this.#state, FIXTURE_CONTEXT);
    if (!decision.ok) throw new Error(`fixture command ${command.kind} rejected: ${decision.code} ${decision.message}`);
    for (const draft of decision.events) {
      evolve(this.#state, draft.event, { ledgerVersion: this.#state.version + 1, recordedAtMs: FIXTURE_NOW_MS, effectiveAtMs: draft.effectiveAtMs });
      this.#streamVersion += 1;
      const stored = this.#codec.encode(draft, {
        eventId: randomUUID(),
        tenantId: BENCH_TENANT_ID,
        ledgerId: this.#ledgerId,
        ledgerVersion: this.#streamVersion,
        recordedAtMs: FIXTURE_NOW_MS,
        correlationId: null,
        causationId: null,
        metadata: {},
        previousHash: this.#lastHash,
      });
      this.#lastHash = stored.hash;
      out.push(stored);
    }
    return decision.events.length;
  }
}
