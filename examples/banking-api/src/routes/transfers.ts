import { InvalidAmountError, InvalidInputError, type CommandResult, type LinkedMemberInput } from '@ledgerkit/ledger-core';
import type { TransferView } from '@ledgerkit/projections';
import type { z } from 'zod';
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
  transferGroupBodySchema,
  transferGroupBodySchemaFor,
  transferGroupReceiptSchema,
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

/** The audit resource of a request that creates a transfer: the id its body names (none before the body passed its schema). */
const newTransferId = (_params: unknown, body: { readonly transferId: string } | undefined): string | null => body?.transferId ?? null;

const hasPostings = (raw: unknown): boolean => typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'postings');

const RECEIPT_RESPONSES = {
  201: { description: 'Recorded.', schema: transferReceiptSchema, headers: { Location: 'The transfer\'s address.' } },
  200: {
    description: 'This transfer id was already applied with the same content: the original outcome, nothing new written.',
    schema: transferReceiptSchema,
    headers: { Location: 'The transfer\'s address.' },
  },
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

type GroupMember = z.output<typeof transferGroupBodySchema>['transfers'][number];

/** A group member as ledger-core's `linked` takes it, and the receipt fields it answers with. */
function linkedMemberOf(member: GroupMember): { input: LinkedMemberInput; kind: Kind; links: { pendingId?: string; reversalOf?: string } } {
  switch (member.kind) {
    case 'transfer': {
      const { kind: _kind, ...input } = member;
      return { input: { kind: 'transfer', input }, kind: 'transfer', links: {} };
    }
    case 'hold': {
      const { kind: _kind, ...input } = member;
      return { input: { kind: 'hold', input }, kind: 'hold', links: {} };
    }
    case 'postHold': {
      const { kind: _kind, holdId, ...rest } = member;
      return { input: { kind: 'postPending', input: { ...rest, pendingId: holdId } }, kind: 'postPending', links: { pendingId: holdId } };
    }
    case 'voidHold': {
      const { kind: _kind, holdId, ...rest } = member;
      return { input: { kind: 'voidPending', input: { ...rest, pendingId: holdId } }, kind: 'voidPending', links: { pendingId: holdId } };
    }
    case 'reversal': {
      const { kind: _kind, ...input } = member;
      return { input: { kind: 'reverse', input }, kind: 'reversal', links: { reversalOf: member.reversalOf } };
    }
  }
}

/**
 * Where ledger-core's path into a linked group (`[index, 'input', field…]`) points in the API's
 * body (`transfers.<index>.<field…>`); the names that differ are mapped back.
 */
function groupPath(path: readonly (string | number)[]): (string | number)[] {
  const [index, input, ...rest] = path;
  if (typeof index !== 'number' || input !== 'input') return ['transfers', ...path];
  return ['transfers', index, ...rest.map((part) => (part === 'pendingId' ? 'holdId' : part))];
}

/** ledger-core's input errors with their paths rewritten by {@link groupPath}; anything else as it is. */
function groupInputError(error: unknown): unknown {
  if (error instanceof InvalidAmountError) return new InvalidAmountError(error.reason, error.message, groupPath(error.path));
  if (error instanceof InvalidInputError) return new InvalidInputError(error.issues.map((issue) => ({ ...issue, path: groupPath(issue.path) })));
  return error;
}

/** Transfers: create (simple or multi-posting), linked groups, holds and their post or void, reversal, get by id. */
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
      audit: { action: 'transfer.create', resourceId: newTransferId },
      async handle({ body, context }) {
        const result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.transfer(body, commandContext(context)));
        return receipt(context, result, 'transfer', body.transferId);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/transfer-groups',
      operationId: 'createTransferGroup',
      summary: 'Apply several transfers all together or not at all (a linked group)',
      description:
        'Up to 64 transfers, holds, hold posts or voids and reversals (each tagged with `kind`), decided in order against the ledger as each earlier one leaves it, and recorded in one atomic append: either every one is applied or none is. When one is rejected the answer is that member\'s problem (its stable `code`, e.g. `insufficient_funds`), with `errors[0].path` naming it (`body.transfers.<index>`); nothing is written. Each `transferId` is the ledger\'s idempotency key, as for single transfers: a group whose every transfer was already applied with the same content answers 200 with `duplicate: true`.',
      tag: 'transfers',
      scope: 'transfers:write',
      body: transferGroupBodySchema,
      bodyFor: transferGroupBodySchemaFor,
      responses: {
        201: { description: 'Every transfer of the group was recorded.', schema: transferGroupReceiptSchema },
        200: { description: 'Every transfer of the group had already been applied with the same content: the original outcome, nothing new written.', schema: transferGroupReceiptSchema },
      },
      problems: [404, 409, 422],
      audit: { action: 'transfer.group', resourceId: () => null, memberIds: (body) => body?.transfers.map((member) => member.transferId) ?? null },
      async handle({ body, context }) {
        const members = body.transfers.map(linkedMemberOf);
        const seen = new Map<string, number>();
        for (const [index, member] of body.transfers.entries()) {
          const first = seen.get(member.transferId);
          if (first !== undefined) {
            throw new ProblemError('invalid_request', `transfer id ${member.transferId} appears twice in the group`, {
              errors: [{ path: `body.transfers.${index}.transferId`, message: `the same transferId as transfers.${first}` }],
            });
          }
          seen.set(member.transferId, index);
        }
        let result: CommandResult;
        try {
          result = await ledgers.use(context.tenantId, context.ledgerId, (ledger) => ledger.linked(members.map((member) => member.input), commandContext(context)));
        } catch (error) {
          throw groupInputError(error);
        }
        if (!result.ok) {
          const failedAt = result.members?.findIndex((member) => !member.ok && member.code !== 'linked_group_failed') ?? -1;
          const failed = failedAt < 0 ? undefined : result.members?.[failedAt];
          const detail = failed !== undefined && !failed.ok ? failed.message : result.message;
          throw new ProblemError(result.code, failedAt < 0 ? `the group was rejected, so none was applied: ${detail}` : `transfers.${failedAt} was rejected, so none was applied: ${detail}`, {
            ...(failedAt < 0 ? {} : { errors: [{ path: `body.transfers.${failedAt}`, message: `${result.code}: ${detail}` }] }),
          });
        }
        const transfers = body.transfers.map((member, index) => {
          const outcome = result.members?.[index];
          const accepted = outcome !== undefined && outcome.ok ? outcome : result;
          const { kind, links } = members[index] as ReturnType<typeof linkedMemberOf>;
          return {
            ledgerId: context.ledgerId,
            transferId: member.transferId,
            kind,
            pendingId: links.pendingId ?? null,
            reversalOf: links.reversalOf ?? null,
            ledgerVersion: accepted.ledgerVersion,
            recordedAt: accepted.recordedAt,
            duplicate: accepted.duplicate,
          };
        });
        return {
          status: result.duplicate ? 200 : 201,
          body: { ledgerId: context.ledgerId, ledgerVersion: result.ledgerVersion, recordedAt: result.recordedAt, duplicate: result.duplicate, transfers },
        };
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
      audit: { action: 'hold.create', resourceId: newTransferId },
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
      audit: { action: 'hold.post', resourceId: newTransferId, targetId: (params) => params.holdId },
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
      audit: { action: 'hold.void', resourceId: newTransferId, targetId: (params) => params.holdId },
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
      audit: { action: 'transfer.reverse', resourceId: newTransferId, targetId: (params) => params.transferId },
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
