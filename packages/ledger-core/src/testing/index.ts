/**
 * Test helpers for ledger-core users and store authors: given/when/then specifications for the
 * decider, and the `EventStore` conformance suite every store must pass.
 * @packageDocumentation
 */
export * from './spec.js';
export * from './conformance.js';
