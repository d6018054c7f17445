import { InvalidTenantIdError } from '@ledgerkit/tenant-rls';
import { InvalidInputError, LimitExceededError, type Ledger } from '@ledgerkit/ledger-core';
import {
  ApplicationRoleRequiredError,
  balancesProjection,
  eventProjection,
  ProjectionRunner,
  ReadModels,
  rebuildProjection,
  RunnerNotRunningError,
  type ErrorPolicy,
  type ProjectionStatus,
} from '@ledgerkit/projections';
import { PostgresEventStore } from '@ledgerkit/store-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currencies, eventually, expectBalancesAgree, openFixtureLedger, within, writeTransfers } from './support/fixtures.js';
import { ExtraRoles } from './support/extra-roles.js';
import { openTestDatabase, type TestDatabase } from './support/test-database.js';

// The runner's arguments and the pools it is given, as a caller may get them wrong.

let db: TestDatabase;
let store: PostgresEventStore;
let models: ReadModels;
const ledgers: Ledger[] = [];
const runners: ProjectionRunner[] = [];
/** Pools of the extra roles made here, ended before those roles are dropped. */
let extraRoles: ExtraRoles | undefined;

beforeAll(async () => {
  db = await openTestDatabase();
  extraRoles = new ExtraRoles(db);
  store = await PostgresEventStore.open({ pool: db.app, horizonWaitMs: 10_000 });
  models = new ReadModels({ pool: db.app, currencies });
  for (const tenantId of ['acme', 'globex']) {
    const ledger = await openFixtureLedger(store, tenantId);
    ledgers.push(ledger);
    await writeTransfers(ledger, tenantId, 6, 3);
  }
});

afterAll(async () => {
  await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  for (const ledger of ledgers) await ledger.close();
  await extraRoles?.close();
  await db?.close();
});

function track(runner: ProjectionRunner): ProjectionRunner {
  runners.push(runner);
  return runner;
}

/** A projection that fails on every event: under `stop` it stays before the first one. */
function failingProjection(name = 'always-fails', errorPolicy?: ErrorPolicy) {
  return eventProjection({
    name,
    ...(errorPolicy === undefined ? {} : { errorPolicy }),
    handle: async () => {
      throw new Error('this projection handles nothing');
    },
    reset: async () => undefined,
  });
}

describe('tenant discovery with a malformed id', () => {
  it('reports the malformed id alone and still adds every tenant listed after it', async () => {
    const errors: { error: Error; where: { projection: string; tenantId: string } }[] = [];
    const runner = track(
      new ProjectionRunner({
        pool: db.app,
        store,
        projections: [balancesProjection()],
        currencies,
        discoverTenants: async () => ['Acme Corp', 'acme', 'globex'],
        onError: (error, where) => errors.push({ error, where }),
      }),
    );
    runner.start();
    await runner.whenCaughtUp(10_000);
    expect((await runner.status()).map((status) => status.tenantId).sort()).toEqual(['acme', 'globex']);
    for (const [index, tenantId] of ['acme', 'globex'].entries()) await expectBalancesAgree(models, ledgers[index] as Ledger, tenantId);
    const reported = errors.filter(({ error }) => error instanceof InvalidTenantIdError);
    expect(reported.length).toBeGreaterThanOrEqual(1);
    expect(reported[0]?.error.message).toContain('"Acme Corp"');
    expect(reported[0]?.where).toEqual({ projection: '*', tenantId: '*' });
    await runner.stop();
  });
});

describe('stop and whenCaughtUp do not hang', () => {
  it('stop() resolves while a discoverTenants call is still pending, and ignores its late answer', async () => {
    let calls = 0;
    let answer: (tenants: readonly string[]) => void = () => undefined;
    const runner = track(
      new ProjectionRunner({
        pool: db.app,
        store,
        tenantIds: ['acme'],
        projections: [balancesProjection()],
        currencies,
        discoverTenants: () => {
          calls += 1;
          return new Promise<readonly string[]>((resolve) => {
            answer = resolve;
          });
        },
      }),
    );
    runner.start();
    await eventually(async () => calls === 1, 5_000, 'the discovery call');
    await within(runner.stop(), 5_000, 'stop()');
    answer(['globex']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const statuses = await runner.status();
    expect(statuses.map((status) => [status.tenantId, status.state])).toEqual([['acme', 'stopped']]);
    expect(calls).toBe(1);
  });

  it('whenCaughtUp refuses a timeout that is not a finite number of ms, 0 or more, at once', async () => {
    const runner = new ProjectionRunner({ pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies });
    for (const timeoutMs of [Number.NaN, -5, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '100' as unknown as number]) {
      await expect(within(runner.whenCaughtUp(timeoutMs), 2_000, `whenCaughtUp(${String(timeoutMs)})`), String(timeoutMs)).rejects.toBeInstanceOf(LimitExceededError);
    }
    // 0 is a valid timeout: not refused as one (but the runner is, for it was never started).
    const zero = await within(runner.whenCaughtUp(0), 2_000, 'whenCaughtUp(0)').catch((error: unknown) => error);
    expect(zero).toBeInstanceOf(RunnerNotRunningError);
  });

  it('whenCaughtUp rejects at once, with RunnerNotRunningError saying why, before start() and after stop(), not after its timeout', async () => {
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies }));
    const before = await within(runner.whenCaughtUp(), 1_000, 'whenCaughtUp() before start()').catch((error: unknown) => error);
    expect(before).toBeInstanceOf(RunnerNotRunningError);
    expect(before).toMatchObject({ code: 'runner_not_running', reason: 'not-started', message: expect.stringContaining('the runner is not started') });
    runner.start();
    await runner.whenCaughtUp(10_000);
    await runner.stop();
    const after = await within(runner.whenCaughtUp(), 1_000, 'whenCaughtUp() after stop()').catch((error: unknown) => error);
    expect(after).toMatchObject({ code: 'runner_not_running', reason: 'stopped', message: expect.stringContaining('the runner was stopped') });
    // A runner with no tenant (yet) is not caught up either, once stopped: nothing is left to catch up.
    const discovering = track(new ProjectionRunner({ pool: db.app, store, projections: [balancesProjection()], currencies, discoverTenants: async () => [] }));
    discovering.start();
    await discovering.whenCaughtUp(10_000);
    await discovering.stop();
    await expect(within(discovering.whenCaughtUp(), 1_000, 'whenCaughtUp() of a stopped runner with no tenant')).rejects.toBeInstanceOf(RunnerNotRunningError);
  });
});

describe('status', () => {
  it('lagEvents counts a ledger named like an Object.prototype member (constructor) as any other', async () => {
    const tenantId = 'proto-names';
    const ledger = await openFixtureLedger(store, tenantId, 'constructor');
    ledgers.push(ledger);
    await writeTransfers(ledger, 'p', 3);
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: [tenantId], projections: [failingProjection(), balancesProjection()], currencies }));
    runner.start();
    await runner.whenCaughtUp(10_000);
    const statuses = await runner.status();
    await runner.stop();
    // Stopped on the first event: every event of the ledger is still to be handled.
    expect(statuses.find((status) => status.projection === 'always-fails')).toMatchObject({ state: 'failed', lagEvents: ledger.version, eventsApplied: 0 });
    expect(statuses.find((status) => status.projection === 'balances')).toMatchObject({ lagEvents: 0, eventsApplied: ledger.version });
  });

  it("lagEvents counts only the tenant's own streams, even where row-level security does not filter them", async () => {
    // A runner that is never started does not check its pool: status() over the superuser pool
    // shows what the query itself selects, every tenant's streams being visible to it.
    // A projection that never ran for acme: every event of acme's ledger is still to be handled.
    const runner = new ProjectionRunner({ pool: db.admin, store, tenantIds: ['acme'], projections: [failingProjection('never-ran')], currencies });
    const { rows } = await db.admin.query<{ tenants: number }>('SELECT count(DISTINCT tenant_id)::int AS tenants FROM ledgerkit.ledger_streams');
    expect(rows[0]?.tenants).toBeGreaterThan(1);
    const acme = ledgers[0] as Ledger;
    expect((await runner.status()).map((status: ProjectionStatus) => status.lagEvents)).toEqual([acme.version]);
  });
});

describe('a pool whose role escapes row-level security', () => {
  it.each([
    ['a superuser', async () => db.admin, 'bypasses_rls'],
    ['a role with BYPASSRLS', () => (extraRoles as ExtraRoles).pool('bypassrls'), 'bypasses_rls'],
    ["a member of the tables' owner", () => (extraRoles as ExtraRoles).pool('owner-member'), 'owns_tables'],
  ] as const)('is refused by the runner (%s): nothing is projected, every projection fails with ApplicationRoleRequiredError', async (_kind, poolOf, reason) => {
    const pool = await poolOf();
    const seen: string[] = [];
    const spy = eventProjection({
      name: 'spy',
      handle: async ({ client }) => {
        const { rows } = await client.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM ledgerkit.events ORDER BY 1');
        seen.push(rows.map((row) => row.tenant_id).join(','));
      },
      reset: async () => undefined,
    });
    const errors: Error[] = [];
    const runner = track(new ProjectionRunner({ pool, store, tenantIds: ['acme', 'globex'], projections: [spy], currencies, onError: (error) => errors.push(error) }));
    runner.start();
    const refusal = await within(runner.whenCaughtUp(10_000), 15_000, 'whenCaughtUp').catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ApplicationRoleRequiredError);
    expect(refusal).toMatchObject({ code: 'application_role_required', reason });
    await expect(runner.rebuild('spy', 'acme')).rejects.toBeInstanceOf(ApplicationRoleRequiredError);
    const statuses = await runner.status();
    expect(statuses.map((status) => status.state)).toEqual(['failed', 'failed']);
    for (const status of statuses) expect(status.lastError?.message).toContain('must connect as the application role');
    expect(errors.filter((error) => error instanceof ApplicationRoleRequiredError)).toHaveLength(1);
    await within(runner.stop(), 5_000, 'stop()');
    expect(seen).toEqual([]);
    const checkpoints = await db.admin.query(`SELECT 1 FROM ledgerkit.projection_checkpoints WHERE projection = 'spy'`);
    expect(checkpoints.rowCount).toBe(0);
    // rebuildProjection makes the same check.
    await expect(rebuildProjection({ pool, tenantId: 'acme', projection: spy })).rejects.toBeInstanceOf(ApplicationRoleRequiredError);
    expect((await db.admin.query(`SELECT 1 FROM ledgerkit.projection_checkpoints WHERE projection = 'spy'`)).rowCount).toBe(0);
  });

  it('the application role passes the check, and projects', async () => {
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies }));
    runner.start();
    await runner.whenCaughtUp(10_000);
    expect((await runner.status())[0]?.state).toBe('live');
    await runner.stop();
  });
});

describe('options and arguments', () => {
  it('refuses a logTailBytesMax outside 0..2^36 or not an integer, and takes 0 (nothing kept)', () => {
    const base = { pool: db.app, store, tenantIds: ['acme'], currencies, projections: [balancesProjection()] };
    for (const logTailBytesMax of [-1, 1.5, 2 ** 36 + 1, Number.NaN]) {
      expect(() => new ProjectionRunner({ ...base, logTailBytesMax }), String(logTailBytesMax)).toThrow(LimitExceededError);
    }
    expect(new ProjectionRunner({ ...base, logTailBytesMax: 0 })).toBeInstanceOf(ProjectionRunner);
  });

  it('refuses an unknown errorPolicy, runner-wide or per projection, instead of taking it for stop', () => {
    const base = { pool: db.app, store, tenantIds: ['acme'], currencies };
    expect(() => new ProjectionRunner({ ...base, projections: [balancesProjection()], errorPolicy: 'skip' as ErrorPolicy })).toThrow(LimitExceededError);
    expect(() => new ProjectionRunner({ ...base, projections: [failingProjection('typo', 'Stop' as ErrorPolicy)] })).toThrow(/errorPolicy of projection typo/);
    // The two policies there are.
    for (const errorPolicy of ['stop', 'skip-with-record'] as const) {
      expect(new ProjectionRunner({ ...base, projections: [failingProjection('ok', errorPolicy)], errorPolicy })).toBeInstanceOf(ProjectionRunner);
    }
  });

  it('rebuild of a projection or tenant the runner does not run returns a rejected promise rather than throwing', async () => {
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies }));
    runner.start();
    let returned: Promise<void> | undefined;
    expect(() => {
      returned = runner.rebuild('nope', 'acme');
    }).not.toThrow();
    await expect(returned).rejects.toBeInstanceOf(RangeError);
    await expect(runner.rebuild('balances', 'nobody')).rejects.toThrow(/no projection balances for tenant nobody/);
    await runner.stop();
  });

  it('rebuildProjection refuses a projection name the runner would refuse, writing nothing', async () => {
    for (const name of ['Not A Valid Name!', 'x'.repeat(10_000), '']) {
      const projection = { ...balancesProjection(), name };
      await expect(rebuildProjection({ pool: db.app, tenantId: 'acme', projection })).rejects.toBeInstanceOf(LimitExceededError);
    }
    const { rows } = await db.admin.query<{ projection: string }>('SELECT projection FROM ledgerkit.projection_checkpoints WHERE tenant_id = $1 ORDER BY 1', ['acme']);
    expect(rows.map((row) => row.projection)).toEqual(['balances']);
    // A valid name still rebuilds.
    await expect(rebuildProjection({ pool: db.app, tenantId: 'acme', projection: eventProjection({ name: 'fresh', handle: async () => undefined, reset: async () => undefined }) })).resolves.toMatchObject({ position: null });
  });
});

describe('options of the wrong shape, from a caller without types', () => {
  it('are refused with InvalidInputError at the option: a string of tenants, a projection factory not called, a callback that is not a function', () => {
    const base = { pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies };
    type Options = ConstructorParameters<typeof ProjectionRunner>[0];
    const refusals: [Partial<Record<keyof Options, unknown>> | null, string][] = [
      // One tenant per letter (a, c, m, e) otherwise.
      [{ ...base, tenantIds: 'acme' }, 'options.tenantIds'],
      // A factory whose name passes the name check: every event would fail, or be skipped.
      [{ ...base, projections: [Object.assign(async () => undefined, { displayName: 'counts' })] }, 'options.projections.0'],
      [{ ...base, projections: [{ name: 'counts' }] }, 'options.projections.0'],
      [{ ...base, projections: [balancesProjection(), null] }, 'options.projections.1'],
      [{ ...base, projections: balancesProjection() }, 'options.projections'],
      // Every error would be swallowed.
      [{ ...base, onError: 'console' }, 'options.onError'],
      [{ ...base, onBatch: 42 }, 'options.onBatch'],
      [{ ...base, discoverTenants: ['acme'] }, 'options.discoverTenants'],
      [null, 'options'],
    ];
    for (const [options, at] of refusals) {
      let thrown: unknown;
      try {
        new ProjectionRunner(options as unknown as Options);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, at).toBeInstanceOf(InvalidInputError);
      expect((thrown as InvalidInputError).message, at).toContain(`at ${at}:`);
    }
  });
});

describe('start and stop', () => {
  it('a runner stopped before it started refuses to start, rather than reporting standby and projecting nothing; stop() twice resolves', async () => {
    const runner = track(new ProjectionRunner({ pool: db.app, store, tenantIds: ['acme'], projections: [balancesProjection()], currencies }));
    await runner.stop();
    expect(() => runner.start()).toThrow(/stopped/);
    await expect(runner.stop()).resolves.toBeUndefined();
    expect((await runner.status()).map((status) => status.state)).toEqual(['stopped']);
  });
});

describe('callbacks', () => {
  it('an async onBatch or onError that rejects leaves no unhandled rejection (which would end the process) and stops nothing', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      let batches = 0;
      let errors = 0;
      const runner = track(
        new ProjectionRunner({
          pool: db.app,
          store,
          tenantIds: ['acme'],
          projections: [eventProjection({ name: 'async-callbacks', handle: async () => undefined, reset: async () => undefined }), failingProjection('fails-for-callbacks')],
          currencies,
          onBatch: async () => {
            batches += 1;
            throw new Error('the metrics sink is down');
          },
          onError: async () => {
            errors += 1;
            throw new Error('the log sink is down');
          },
        }),
      );
      runner.start();
      await runner.whenCaughtUp(10_000);
      await eventually(async () => batches > 0 && errors > 0, 5_000, 'both callbacks called');
      const statuses = await runner.status();
      expect(statuses.map((status) => [status.projection, status.state])).toEqual([
        ['async-callbacks', 'live'],
        ['fails-for-callbacks', 'failed'],
      ]);
      await runner.stop();
      // A rejection nobody handles is reported once the microtasks have run.
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
