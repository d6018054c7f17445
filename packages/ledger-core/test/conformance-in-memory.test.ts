import { InMemoryEventStore } from '@ledgerkit/ledger-core';
import { describeEventStoreConformance } from '@ledgerkit/ledger-core/testing';

describeEventStoreConformance('InMemoryEventStore', async () => ({ store: new InMemoryEventStore() }));
