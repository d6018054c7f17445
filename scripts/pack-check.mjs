#!/usr/bin/env node
/**
 * `pnpm pack:check`: checks that what `pnpm pack` makes of each public package installs and works
 * for a consumer outside the workspace. Run it after `pnpm build` (it packs the built `dist/`).
 *
 * 1. Packs every package under packages/ that is not `private` into a temp dir and checks each
 *    tarball: the files the manifest points at (main, module, types, every export map target,
 *    every bin) and dist/index.{js,cjs,d.ts,d.cts}, README.md and, for a package that declares a
 *    license, a LICENSE file are in it; no package.json in it still says `workspace:`; its
 *    @ledgerkit/* dependencies name the versions being packed; every export map condition object
 *    lists `types` first and `default` last; every bin starts with a shebang and its relative
 *    imports are in the tarball.
 * 2. Installs all the tarballs with npm into a temp project in os.tmpdir() (their other
 *    dependencies come from the registry) and checks that every @ledgerkit/* package there came
 *    from a tarball, not the registry. Then, in that project:
 *    - test/packaging/consumer/esm-smoke.mjs imports every entry (and `@ledgerkit/ledger-core/testing`)
 *      and uses ledger-core end to end on its in-memory store;
 *    - test/packaging/consumer/cjs-smoke.cjs requires every entry and makes a transfer;
 *    - the repo's tsc type-checks test/packaging/consumer/types-esm.mts and types-cjs.cts against
 *      the installed packages (strict, skipLibCheck off) with moduleResolution node16, then
 *      types-esm.mts with moduleResolution bundler;
 *    - given a PostgreSQL server (a superuser URL: --database-url, or LEDGERKIT_PACK_CHECK_DATABASE_URL),
 *      test/packaging/consumer/pg-smoke.mjs migrates a database of its own, appends through
 *      PostgresEventStore, catches a projection runner up and reads the read models, then drops
 *      the database and its roles;
 *    - every bin answers `npx <bin> --help` with its usage and exit code 0 (and `ledgerkit-audit`
 *      with no arguments and no DATABASE_URL exits 2, as documented).
 * 3. Removes its temp dirs (unless --keep), prints a summary, and exits 1 if anything failed.
 *
 * Options: --keep (keep the temp dir and print its path), --verbose (print every command's output),
 * --database-url URL (see above).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const consumerSources = join(root, 'test', 'packaging', 'consumer');
const tsc = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc');
const keep = process.argv.includes('--keep');
const verbose = process.argv.includes('--verbose');
/** A PostgreSQL superuser URL for pg-smoke.mjs: `--database-url URL`, else LEDGERKIT_PACK_CHECK_DATABASE_URL. */
const databaseUrlAt = process.argv.indexOf('--database-url');
const databaseUrl = (databaseUrlAt === -1 ? undefined : process.argv[databaseUrlAt + 1]) ?? (process.env.LEDGERKIT_PACK_CHECK_DATABASE_URL || undefined);
const started = performance.now();

/** What went wrong, one clear sentence each. */
const failures = [];
/** Worth knowing, not a failure. */
const warnings = [];
/** One line per step for the summary. */
const summary = [];

/** Runs a command; never throws. */
function run(command, args, { cwd, env, timeoutMs = 120_000 } = {}) {
  return new Promise((resolvePromise) => {
    const t0 = performance.now();
    const child = spawn(command, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    const done = (status, error) => {
      clearTimeout(timer);
      const ms = Math.round(performance.now() - t0);
      if (verbose) console.log(`$ ${command} ${args.join(' ')}  (in ${cwd ?? process.cwd()}, ${ms} ms, exit ${status})\n${stdout}${stderr}`);
      resolvePromise({ status, stdout, stderr: error === undefined ? stderr : `${stderr}${error.message}`, ms });
    };
    child.on('error', (error) => done(null, error));
    child.on('close', (status) => done(status));
  });
}

/** The last lines of a command's output, indented, for a failure message. */
function tail(result, lines = 25) {
  const text = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-lines).join('\n');
  return text === '' ? '' : `\n    ${text.replace(/\n/g, '\n    ')}`;
}

function step(ok, text) {
  summary.push(`${ok ? 'ok  ' : 'FAIL'} ${text}`);
}

/** Every file under `dir`, as paths relative to it with forward slashes. */
function filesUnder(dir) {
  const out = [];
  const walk = (current) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(dir, path).split('\\').join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** `./dist/x.js` → `dist/x.js`. */
const normal = (path) => path.replace(/^\.\//, '');

/** Every string target of an export map, and every condition object in it. */
function exportTargets(exports, at = '.', targets = [], objects = []) {
  if (typeof exports === 'string') targets.push({ at, target: exports });
  else if (Array.isArray(exports)) exports.forEach((item, i) => exportTargets(item, `${at}[${i}]`, targets, objects));
  else if (exports !== null && typeof exports === 'object') {
    const keys = Object.keys(exports);
    if (!keys.some((key) => key.startsWith('.'))) objects.push({ at, keys });
    for (const key of keys) exportTargets(exports[key], `${at} > ${key}`, targets, objects);
  }
  return { targets, objects };
}

/** The public packages under packages/, in a stable order. */
function publicPackages() {
  const dir = join(root, 'packages');
  return readdirSync(dir)
    .sort()
    .map((name) => join(dir, name))
    .filter((path) => existsSync(join(path, 'package.json')))
    .map((path) => ({ dir: path, manifest: JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) }))
    .filter(({ manifest }) => manifest.private !== true);
}

/** Checks one extracted tarball; pushes to `failures` and `warnings`. */
function checkTarball(pkg, extracted, versions) {
  const { manifest } = pkg;
  const name = manifest.name;
  const files = filesUnder(extracted);
  const has = (path) => files.includes(normal(path));
  const missing = (path, why) => failures.push(`${name}: the tarball has no ${normal(path)} (${why})`);
  const packed = JSON.parse(readFileSync(join(extracted, 'package.json'), 'utf8'));
  const before = failures.length;

  for (const path of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']) {
    if (!has(path)) missing(path, existsSync(join(pkg.dir, path)) ? 'it is built but not packed: check "files"' : 'not built: run `pnpm build` first');
  }
  if (!files.some((file) => /^readme(\.md)?$/i.test(file))) missing('README.md', 'add one to the package directory');
  const license = packed.license;
  if (typeof license === 'string' && license !== '' && license !== 'UNLICENSED' && !files.some((file) => /^licen[cs]e(\.(md|txt))?$/i.test(file))) {
    missing('LICENSE', `the package declares "license": "${license}", and pnpm packs the package's own LICENSE file, or the workspace root's when it has none: add one`);
  }
  for (const field of ['main', 'module', 'types']) {
    if (typeof packed[field] === 'string' && !has(packed[field])) missing(packed[field], `package.json "${field}" points at it`);
  }
  const { targets, objects } = exportTargets(packed.exports ?? {});
  for (const { at, target } of targets) {
    if (!target.includes('*') && !has(target)) missing(target, `exports ${at} points at it`);
  }
  for (const { at, keys } of objects) {
    if (keys.includes('types') && keys[0] !== 'types') failures.push(`${name}: exports ${at} lists "types" after ${JSON.stringify(keys[0])}: TypeScript takes the first matching condition, so "types" must come first`);
    if (keys.includes('default') && keys[keys.length - 1] !== 'default') failures.push(`${name}: exports ${at} lists conditions after "default", which always matches: they are never used`);
  }
  const bins = typeof packed.bin === 'string' ? { [name.split('/').pop()]: packed.bin } : (packed.bin ?? {});
  for (const [command, path] of Object.entries(bins)) {
    if (!has(path)) {
      missing(path, `bin "${command}" points at it: check "files"`);
      continue;
    }
    const text = readFileSync(join(extracted, normal(path)), 'utf8');
    if (!text.startsWith('#!')) failures.push(`${name}: bin "${command}" (${normal(path)}) does not start with a shebang line (#!/usr/bin/env node)`);
    for (const [, specifier] of text.matchAll(/(?:import|from|require\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = relative(extracted, resolve(extracted, dirname(normal(path)), specifier)).split('\\').join('/');
      if (!has(target)) missing(target, `bin "${command}" imports it`);
    }
  }
  // No workspace: protocol may reach the registry, in any package.json of the tarball.
  for (const file of files.filter((file) => file === 'package.json' || file.endsWith('/package.json'))) {
    const text = readFileSync(join(extracted, file), 'utf8');
    if (!text.includes('workspace:')) continue;
    const json = JSON.parse(text);
    const where = [];
    for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
      for (const [dep, spec] of Object.entries(json[field] ?? {})) if (String(spec).startsWith('workspace:')) where.push(`${field}.${dep}: ${spec}`);
    }
    failures.push(`${name}: ${file} in the tarball still says "workspace:" (${where.join(', ') || 'somewhere'}): pack with pnpm, which rewrites it, not npm`);
  }
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, spec] of Object.entries(packed[field] ?? {})) {
      if (versions.has(dep) && spec !== versions.get(dep) && !String(spec).startsWith('workspace:')) {
        failures.push(`${name}: ${field}.${dep} is "${spec}" in the tarball, but the workspace packs ${dep}@${versions.get(dep)}`);
      }
    }
  }
  if (packed.repository === undefined) warnings.push(`${name}: no "repository" field (npm shows no source link)`);
  const stray = files.filter((file) => /^(src|test)\//.test(file));
  if (stray.length > 0) warnings.push(`${name}: the tarball carries ${stray.length} source/test file(s), e.g. ${stray[0]}`);
  const sizeKb = Math.round(statSync(pkg.tarball).size / 1024);
  step(failures.length === before, `${name}@${manifest.version}: ${files.length} files, ${sizeKb} kB packed${failures.length === before ? '' : ` (${failures.length - before} problem(s))`}`);
}

async function main() {
  const packages = publicPackages();
  if (packages.length === 0) {
    failures.push('no public package found under packages/');
    return;
  }
  const versions = new Map(packages.map(({ manifest }) => [manifest.name, manifest.version]));
  const temp = mkdtempSync(join(tmpdir(), 'ledgerkit-pack-check-'));
  const tarballs = join(temp, 'tarballs');
  const consumer = join(temp, 'consumer');
  mkdirSync(tarballs);
  const cleanUp = () => {
    if (keep) console.log(`pack-check: kept ${temp}`);
    else rmSync(temp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  try {
    // 1. Pack (in parallel: each is a separate directory), extract, check.
    const packed = await Promise.all(
      packages.map(async (pkg) => {
        const destination = join(tarballs, pkg.manifest.name.replace(/^@/, '').replace(/\//g, '-'));
        mkdirSync(destination);
        const result = await run('pnpm', ['pack', '--pack-destination', destination], { cwd: pkg.dir });
        const tarball = readdirSync(destination).find((file) => file.endsWith('.tgz'));
        if (result.status !== 0 || tarball === undefined) {
          failures.push(`${pkg.manifest.name}: \`pnpm pack\` failed (exit ${result.status})${tail(result)}`);
          return undefined;
        }
        pkg.tarball = join(destination, tarball);
        const extracted = join(destination, 'extracted');
        mkdirSync(extracted);
        const untar = await run('tar', ['xzf', pkg.tarball, '-C', extracted, '--strip-components=1']);
        if (untar.status !== 0) {
          failures.push(`${pkg.manifest.name}: could not extract ${pkg.tarball}${tail(untar)}`);
          return undefined;
        }
        checkTarball(pkg, extracted, versions);
        return pkg;
      }),
    );
    if (packed.includes(undefined)) return;
    const packOk = failures.length === 0;

    // 2. A consumer project outside the workspace.
    cpSync(consumerSources, consumer, { recursive: true });
    writeFileSync(join(consumer, 'package.json'), `${JSON.stringify({ name: 'ledgerkit-pack-check-consumer', version: '0.0.0', private: true, license: 'UNLICENSED' }, null, 2)}\n`);
    // The testing entry imports vitest (an optional peer of ledger-core): install it to load that entry.
    const extras = [];
    const core = packages.find(({ manifest }) => manifest.name === '@ledgerkit/ledger-core');
    const vitestRange = core?.manifest.peerDependencies?.vitest;
    if (core?.manifest.exports?.['./testing'] !== undefined && vitestRange !== undefined) extras.push(`vitest@${vitestRange}`);
    // A Node.js consumer has Node's types: zod's declarations name `URL`, which they provide.
    const nodeTypesRange = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies?.['@types/node'];
    extras.push(`@types/node@${nodeTypesRange ?? '*'}`);
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...packages.map((pkg) => pkg.tarball), ...extras], { cwd: consumer, timeoutMs: 300_000 });
    step(install.status === 0, `npm install of ${packages.length} tarball(s)${extras.length > 0 ? ` + ${extras.join(' ')}` : ''} in a project outside the repo (${(install.ms / 1000).toFixed(1)} s)`);
    if (install.status !== 0) {
      failures.push(`npm install of the tarballs failed (exit ${install.status})${tail(install)}`);
      return;
    }
    const lock = JSON.parse(readFileSync(join(consumer, 'package-lock.json'), 'utf8'));
    for (const [path, entry] of Object.entries(lock.packages ?? {})) {
      const match = /(?:^|\/)node_modules\/(@ledgerkit\/[^/]+)$/.exec(path);
      if (match === null) continue;
      if (path !== `node_modules/${match[1]}`) failures.push(`the consumer has a second copy of ${match[1]} at ${path} (${entry.version}): a dependency range does not match the packed version`);
      else if (!String(entry.resolved ?? '').startsWith('file:')) failures.push(`the consumer's ${match[1]} came from ${entry.resolved ?? 'somewhere else'}, not from the packed tarball`);
    }

    const env = { ...process.env, LEDGERKIT_PACKAGES: JSON.stringify(packages.map(({ manifest }) => manifest.name)) };
    delete env.DATABASE_URL;
    delete env.NODE_OPTIONS;
    for (const [label, file] of [
      ['ESM', 'esm-smoke.mjs'],
      ['CJS', 'cjs-smoke.cjs'],
    ]) {
      const result = await run(process.execPath, [file], { cwd: consumer, env, timeoutMs: 60_000 });
      step(result.status === 0, `${label}: ${result.status === 0 ? result.stdout.trim().split('\n').map((line) => line.replace(/^\w+: /, '')).join('; ') : `${file} failed`}`);
      if (result.status !== 0) failures.push(`the ${label} consumer (${file}) failed (exit ${result.status})${tail(result)}`);
    }

    for (const [label, config] of [
      ['moduleResolution node16 (ESM + CJS consumers)', 'tsconfig.node16.json'],
      ['moduleResolution bundler', 'tsconfig.bundler.json'],
    ]) {
      const result = await run(tsc, ['-p', config], { cwd: consumer, timeoutMs: 120_000 });
      step(result.status === 0, `tsc strict, ${label} (${(result.ms / 1000).toFixed(1)} s)`);
      if (result.status !== 0) failures.push(`a TypeScript consumer does not type-check, ${label}:${tail(result, 40)}`);
    }

    for (const { manifest } of packages) {
      const bins = typeof manifest.bin === 'string' ? { [manifest.name.split('/').pop()]: manifest.bin } : (manifest.bin ?? {});
      for (const command of Object.keys(bins)) {
        const help = await run('npx', ['--no', '--', command, '--help'], { cwd: consumer, env, timeoutMs: 60_000 });
        const helpOk = help.status === 0 && help.stdout.includes(`usage: ${command}`);
        step(helpOk, `npx ${command} --help: exit ${help.status}`);
        if (!helpOk) failures.push(`\`npx ${command} --help\` should print its usage and exit 0; it exited ${help.status}${tail(help)}`);
        if (command === 'ledgerkit-audit') {
          // Documented: exit code 2 when the audit cannot run, here for want of a database URL.
          const bare = await run('npx', ['--no', '--', command], { cwd: consumer, env, timeoutMs: 60_000 });
          const bareOk = bare.status === 2 && bare.stderr.includes('--database-url');
          step(bareOk, `npx ${command} (no DATABASE_URL): exit ${bare.status}`);
          if (!bareOk) failures.push(`\`npx ${command}\` without a database URL should explain and exit 2; it exited ${bare.status}${tail(bare)}`);
        }
      }
    }
    // The PostgreSQL packages end to end, when a server is given.
    if (databaseUrl === undefined) warnings.push('no PostgreSQL server given (--database-url URL or LEDGERKIT_PACK_CHECK_DATABASE_URL): pg-smoke.mjs not run');
    else {
      const result = await run(process.execPath, ['pg-smoke.mjs'], { cwd: consumer, env: { ...env, LEDGERKIT_PG_URL: databaseUrl }, timeoutMs: 120_000 });
      step(result.status === 0, `PostgreSQL: ${result.status === 0 ? result.stdout.trim().replace(/^pg: /, '') : 'pg-smoke.mjs failed'}`);
      if (result.status !== 0) failures.push(`the PostgreSQL consumer (pg-smoke.mjs) failed (exit ${result.status})${tail(result)}`);
    }
    if (!packOk) warnings.push('the tarball checks failed, so the consumer ran on defective tarballs');
  } finally {
    cleanUp();
  }
}

try {
  await main();
} catch (error) {
  failures.push(`pack-check itself failed: ${error instanceof Error ? error.stack : String(error)}`);
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(summary.join('\n'));
for (const warning of warnings) console.log(`warn ${warning}`);
if (failures.length > 0) {
  console.error(`\npack-check: FAILED (${failures.length} problem(s), ${seconds} s)`);
  for (const failure of failures) console.error(`  - ${failure}`);
  process.exit(1);
}
console.log(`pack-check: OK (${seconds} s)`);
