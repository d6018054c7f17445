/** Zod schemas of every public command input, for HTTP layers and OpenAPI generation. */
export {
  openAccountInputSchema,
  freezeAccountInputSchema,
  accountIdInputSchema,
  simpleTransferInputSchema,
  multiTransferInputSchema,
  transferInputSchema,
  holdInputSchema,
  postPendingInputSchema,
  voidPendingInputSchema,
  reverseInputSchema,
  linkedInputSchema,
  linkedMemberInputSchema,
} from './parse-command.js';
