/**
 * @ledgerkit/ledger-core — the double-entry, event-sourced ledger core.
 *
 * Start with {@link Ledger}: open one over an {@link EventStore} (the {@link InMemoryEventStore}
 * here, PostgreSQL or EventStoreDB from their packages), open accounts and move money.
 * @packageDocumentation
 */
export { Ledger, type HistoryEntry, type HistoryPage } from './ledger.js';

export {
  LedgerWriter,
  BATCH_SIZE_MAX_LIMIT,
  QUEUE_LENGTH_MAX_LIMIT,
  APPENDS_IN_FLIGHT_MAX_LIMIT,
  EXPIRIES_COMPACT_MIN,
  STATE_BYTES_MAX_DEFAULT,
  type LedgerWriterOptions,
  type CommandContext,
  type CommandResult,
  type CommandAccepted,
  type CommandRejected,
} from './writer/ledger-writer.js';

export { CurrencyRegistry, CURRENCY_SCALE_MAX, CUSTOM_CURRENCIES_MAX, type Currency } from './money/currency.js';
export {
  parseAmount,
  formatAmount,
  toDecimal,
  fromDecimal,
  convert,
  AMOUNT_DIGITS_MAX,
  AMOUNT_MINOR_MAX,
  AMOUNT_STRING_LENGTH_MAX,
  FROM_DECIMAL_STRING_LENGTH_MAX,
  type ParseAmountOptions,
  type RoundingMode,
} from './money/amount.js';

export * from './domain/types.js';
export * from './domain/limits.js';
export { REJECTION_CODES, type RejectionCode } from './domain/rejections.js';
export { decide, type DecideContext, type Decision, type Accepted, type Rejected, type EventDraft, type OriginalOutcome } from './domain/decide.js';
export { evolve, transferRecordOf, type EventMeta } from './domain/evolve.js';
export { initialState, overlayState, commitOverlay, OverlayTable, type LedgerState, type AccountState, type TransferRecord, type TransferKind, type LifecycleCommandRecord, type Table, type OverlayState } from './domain/state.js';
export { serializeState, restoreState, SNAPSHOT_SCHEMA_VERSION } from './domain/snapshot-codec.js';

export { parseCommand, type LinkedMemberInput } from './input/parse-command.js';
export { parseInstantMs, INSTANT_MESSAGE } from './input/instant.js';
export * as inputSchemas from './input/schemas-export.js';

export { EventCodec, appendableDataJson, dataJsonOf, indexKeysOf, indexIdsOf, INDEX_KEY_PREFIXES, type IndexIds, type EventCodecOptions, type EnvelopeInput, type DecodedEvent } from './events/codec.js';
export { GENESIS_HASH, type StoredEvent, type GlobalEvent, type JsonObject, type JsonValue } from './events/stored-event.js';
export { canonicalJson, canonicalEncoding, hashEvent, CANONICAL_DEPTH_MAX } from './events/canonical.js';
export { verifyChain, type ChainVerification, type BrokenLink, type ChainStart } from './events/verify-chain.js';
export { UpcasterRegistry, builtInUpcasters, UPCAST_STEPS_MAX, type Upcaster } from './events/upcasters.js';
export { eventDataSchemas, storedEventSchema, CURRENT_SCHEMA_VERSIONS, isStorableText, STORABLE_TEXT_MESSAGE, type WireEventData } from './events/schemas.js';

export {
  APPEND_DATA_CHARS_MAX,
  APPEND_EVENTS_MAX,
  READ_LIMIT_MAX,
  INDEX_KEYS_MAX,
  type EventStore,
  type AppendRequest,
  type ReadStreamRequest,
  type ReadAllRequest,
  type FindByIndexKeysRequest,
  type Snapshot,
} from './store/event-store.js';
export { InMemoryEventStore } from './store/in-memory-store.js';
export { snapshotStateJson, SNAPSHOT_SCHEMA_VERSION_STORED_MAX, SNAPSHOT_STATE_BYTES_MAX } from './store/snapshot-content.js';
export { copyLedger, COPY_BATCH_SIZE_DEFAULT, type CopyLedgerOptions, type CopyLedgerResult } from './store/copy-ledger.js';

export { replayLedger, readLedger, replayAccountEntries, parseAsOf, AS_OF_MESSAGE, REPLAY_PAGE_SIZE, HISTORY_PAGE_SIZE_MAX, type AsOf, type AsOfPoint, type ReplayOptions, type ReplayedState, type LedgerSource, type AccountEntry, type AccountEntriesPage, type AccountEntriesOptions } from './query/replay.js';
export { balanceOf, trialBalanceOf, type Balance, type TrialBalance, type TrialBalanceLine, type TrialBalanceTotal } from './query/views.js';

export * from './errors.js';
