import type { CommandResult } from '@ledgerkit/ledger-core';
import type { TransferView } from '@ledgerkit/projections';
import { acceptedOrThrow } from '../error-mapping.js';
import { ProblemError } from '../problems.js';
import { defineRoute, ok, type Answer, type RequestContext, type Route } from '../route.js';
import {
  holdBodySchema,
  holdParamsSchema,
  multiHoldBodySchema,
  multiTransferBodySchema,
  postHoldBodySchema,
  reverseBodySchema,
  simpleHoldBodySchema,
  simpleTransferBodySchema,
  transferBodySchema,
  transferParamsSchema,
  transferReceiptSchema,
  transferSchema,
  voidHoldBodySchema,
} from '../schemas.js';
import type { Services } from '../services.js';
import { commandContext } from './accounts.js';

type Kind = 'transfer' | 'hold' | 'postPending' | 'voidPending' | 'reversal';

/** 201 with a receipt for a new transfer, 200 for a transfer id already applied with the same content. */
function receipt(context: RequestContext, result: CommandResult, kind: Kind, transferId: string, links: { pendingId?: string; reversalOf?: string } = {}): Answer {
  const accepted = acceptedOrThrow(result);
  return {
    status: accepted.duplicate ? 200 : 201,
    body: {
      ledgerId: context.ledgerId,
      transferId,
      kind,
      pendingId: links.pendingId ?? null,
      reversalOf: links.reversalOf ?? null,
      ledgerVersion: accepted.ledgerVersion,
      recordedAt: accepted.recordedAt,
      duplicate: accepted.duplicate,
    },
    headers: { location: `/transfers/${encodeURIComponent(transferId)}` },
  };
}

const hasPostings = (raw: unknown): boolean => typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'postings');

const RECEIPT_RESPONSES = {
  201: { description: 'Recorded.', schema: transferReceiptSchema, headers: { Location: 'The transfer\'s address.' } },
  200: { description: 'This transfer id was already applied with the same content: the original outcome, nothing new written.', schema: transferReceiptSchema },
};

function transferBody(view: TransferView) {
  return {
    ledgerId: view.ledgerId,
    transferId: view.transferId,
    kind: view.kind,
    postings: view.postings.map((posting) => ({ accountId: posting.accountId, side: posting.side, amount: posting.amount, currency: posting.currency })),
    reference: view.reference,
    pendingId: view.pendingId,
    reversalOf: view.reversalOf,
    reversedBy: view.reversedBy,
    metadata: view.metadata,
    ledgerVersion: view.ledgerVersion,
    recordedAt: view.recordedAt,
    effectiveAt: view.effectiveAt,
    hold: view.hold === null ? null : { ...view.hold },
  };
}

/** Transfers: create (simple or multi-posting), holds and their post or void, reversal, get by id. */
export function transferRoutes(services: Services): Route[] {
  const { ledgers } = services;
  return [
    defineRoute({
      method: 'POST',
      path: '/transfers',
      operationId: 'createTransfer',
      summary: 'Move money',
      description:
        'A simple transfer (`debitAccountId`, `creditAccountId`, `amount`, `currency`) or a multi-posting one (`postings`, balancing per currency). `transferId` is yours to choose and is the ledger\'s own idempotency key: the same id with the same content answers 200 with the original outcome, with different content 409.',
      tag: 'transfers',
      scope: 'transfers:write',
      body: transferBodySchema,
      bodyFor: (raw) => (hasPostings(raw) ? multiTransferBodySchema : simpleTransferBodySchema),
      responses: RECEIPT_RESPONSES,
      problems: [404, 409, 422],
      audit: { action: 'transfer.create', resourceId: () => null },
      async handle({ body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.transfer(body, commandContext(context)));
        return receipt(context, result, 'transfer', body.transferId);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/holds',
      operationId: 'createHold',
      summary: 'Hold money (a pending transfer)',
      description: 'Reserves the amounts (they reduce `available`) until the hold is posted, voided or times out (`timeoutMs`).',
      tag: 'transfers',
      scope: 'transfers:write',
      body: holdBodySchema,
      bodyFor: (raw) => (hasPostings(raw) ? multiHoldBodySchema : simpleHoldBodySchema),
      responses: RECEIPT_RESPONSES,
      problems: [404, 409, 422],
      audit: { action: 'hold.create', resourceId: () => null },
      async handle({ body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.hold(body, commandContext(context)));
        return receipt(context, result, 'hold', body.transferId);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/holds/{holdId}/post',
      operationId: 'postHold',
      summary: 'Post a hold: move all or part of the held money',
      tag: 'transfers',
      scope: 'transfers:write',
      params: holdParamsSchema,
      body: postHoldBodySchema,
      responses: RECEIPT_RESPONSES,
      problems: [404, 409, 422],
      audit: { action: 'hold.post', resourceId: (params) => params.holdId },
      async handle({ params, body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.postPending({ ...body, pendingId: params.holdId }, commandContext(context)));
        return receipt(context, result, 'postPending', body.transferId, { pendingId: params.holdId });
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/holds/{holdId}/void',
      operationId: 'voidHold',
      summary: 'Void a hold: release the held money',
      tag: 'transfers',
      scope: 'transfers:write',
      params: holdParamsSchema,
      body: voidHoldBodySchema,
      responses: RECEIPT_RESPONSES,
      problems: [404, 409, 422],
      audit: { action: 'hold.void', resourceId: (params) => params.holdId },
      async handle({ params, body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.voidPending({ ...body, pendingId: params.holdId }, commandContext(context)));
        return receipt(context, result, 'voidPending', body.transferId, { pendingId: params.holdId });
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/transfers/{transferId}/reversal',
      operationId: 'reverseTransfer',
      summary: 'Reverse a posted transfer',
      description: 'Records a new transfer (`transferId` in the body) with every posting of the original on the other side.',
      tag: 'transfers',
      scope: 'transfers:write',
      params: transferParamsSchema,
      body: reverseBodySchema,
      responses: RECEIPT_RESPONSES,
      problems: [404, 409, 422],
      audit: { action: 'transfer.reverse', resourceId: (params) => params.transferId },
      async handle({ params, body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.reverse({ ...body, reversalOf: params.transferId }, commandContext(context)));
        return receipt(context, result, 'reversal', body.transferId, { reversalOf: params.transferId });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/transfers/{transferId}',
      operationId: 'getTransfer',
      summary: 'Get a transfer, hold, hold resolution or reversal by id',
      description: 'From the history read model. A transfer recorded a moment ago is waited for (up to a couple of seconds) while the read model catches up.',
      tag: 'transfers',
      scope: 'accounts:read',
      params: transferParamsSchema,
      responses: { 200: { description: 'The transfer.', schema: transferSchema } },
      problems: [404],
      audit: { action: 'transfer.read', resourceId: (params) => params.transferId },
      async handle({ params, context }) {
        const read = () => services.models.transfer(context.tenantId, context.ledgerId, params.transferId);
        let view = await read();
        if (view === undefined && (await ledgers.waitForProjections(context.tenantId, services.settings.readYourWritesWaitMs))) view = await read();
        if (view === undefined) throw new ProblemError('not_found', 'no such transfer');
        return ok(transferBody(view));
      },
    }),
  ];
}
