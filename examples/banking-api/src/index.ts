/**
 * banking-api — an Open Banking style REST API on Ledgerkit, built only on the packages' public
 * exports. Start with {@link createBankingApi} (see `main.ts` for production wiring and `demo.ts`
 * for the embedded demo).
 * @packageDocumentation
 */
export { createBankingApi, closeOnSignals, type BankingApi, type BankingApiOptions } from './server.js';
export { migrateBankingApi, API_SCHEMA, type MigrateBankingApiOptions } from './migrations.js';
export { resolveSettings, settingsFromEnv, type ApiSettings } from './config.js';
export { TokenVerifier, requireScope, SCOPES, type Scope, type Principal, type TokenVerifierOptions } from './auth.js';
export { generateDevKeys, loadOrCreateDevKeys, mintToken, DEV_ISSUER, DEFAULT_AUDIENCE, DEV_ALGORITHM, DEFAULT_DEV_KEY_FILE, type DevKeys, type MintTokenOptions } from './dev-tokens.js';
export { API_PROBLEMS, PROBLEM_CONTENT_TYPE, ProblemError, problemCatalogue, problemType, rejectionStatus, type ProblemCode, type ProblemDocument } from './problems.js';
export { RateLimiter, type RateLimiterOptions, type RateDecision } from './rate-limiter.js';
export { createLogger, REDACTED_PATHS } from './logger.js';
export { buildOpenApiDocument, type OpenApiInfo } from './openapi.js';
