/**
 * The TypeScript snippets of the guides and package READMEs, checked against the packages'
 * sources so that they cannot go stale unnoticed.
 *
 * Every ```ts block of the pages in `PAGES` is type-checked, as one module each, with the
 * workspace's compiler options (the root tsconfig.json, whose `paths` map `@ledgerkit/*` to the
 * sources). An HTML comment on the line just before a block (invisible on the rendered page) says
 * how to treat it:
 * - `<!-- snippet: partial -->`: a fragment, not checked (say why in the comment).
 * - `<!-- snippet: given ... -->`: the declarations between `given` and `-->` are put before the
 *   block, for names the snippet uses but does not define (`declare const store: EventStore;`).
 * - `<!-- snippet: run -->`: also run against the in-memory store (the block must need nothing
 *   else); the run must not throw.
 * A block with no comment must compile as it is. A failure names the page, the block's first line
 * and the compiler's message.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as ledgerCore from '@ledgerkit/ledger-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The pages whose snippets are checked, relative to the workspace root. */
const PAGES = [
  'README.md',
  'docs/README.md',
  'docs/concepts.md',
  'docs/event-store.md',
  'docs/postgres.md',
  'docs/auditing.md',
  'docs/rejection-codes.md',
  'packages/ledger-core/README.md',
  'packages/store-postgres/README.md',
  'packages/tenant-rls/README.md',
  'packages/projections/README.md',
  'docs/projections.md',
  'docs/events.md',
  'docs/decider.md',
  'docs/store-authors.md',
] as const;

/** Modules a `run` snippet may import. */
const RUNNABLE_MODULES: Record<string, unknown> = { '@ledgerkit/ledger-core': ledgerCore };

interface Snippet {
  readonly page: string;
  /** 1-based line of the block's first code line on its page. */
  readonly line: number;
  readonly code: string;
  readonly mode: 'check' | 'partial' | 'run';
  readonly given: string;
}

const FENCE = /^```(ts|typescript)\s*$/;
const MARKER = /<!--\s*snippet:\s*(partial|run|given)\b([\s\S]*?)-->\s*$/;

/** The ```ts blocks of a page's text, with the marker that precedes each. */
export function snippetsOf(page: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const snippets: Snippet[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    if (!FENCE.test(lines[index] ?? '')) continue;
    const end = lines.findIndex((line, at) => at > index && line.trimEnd() === '```');
    if (end === -1) throw new Error(`${page}:${index + 1}: a \`\`\`ts block that never closes`);
    // The marker may span lines (a `given` with several declarations): read back to its `<!--`.
    let before = '';
    for (let at = index - 1; at >= 0 && at >= index - 20; at -= 1) {
      before = `${lines[at]}\n${before}`;
      if ((lines[at] ?? '').includes('<!--')) break;
      if (at === index - 1 && !(lines[at] ?? '').includes('-->')) break;
    }
    const marker = MARKER.exec(before.trimEnd());
    const kind = marker?.[1];
    snippets.push({
      page,
      line: index + 2,
      code: lines.slice(index + 1, end).join('\n'),
      mode: kind === 'partial' ? 'partial' : kind === 'run' ? 'run' : 'check',
      given: kind === 'given' ? (marker?.[2] ?? '') : '',
    });
    index = end;
  }
  return snippets;
}

const snippets = PAGES.flatMap((page) => snippetsOf(page, readFileSync(join(root, page), 'utf8')));
const label = (snippet: Snippet): string => `${snippet.page}:${snippet.line}`;

/**
 * Type-checks every snippet in one program. Each becomes a module under packages/store-postgres
 * (where `pg` and its types resolve), its `given` declarations first on the same line so that
 * line numbers in messages are the snippet's own.
 */
function typeCheck(checked: readonly Snippet[]): Map<Snippet, string[]> {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (diagnostic) => { throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')); } });
  if (config === undefined) throw new Error('tsconfig.json could not be read');
  const options: ts.CompilerOptions = { ...config.options, noEmit: true, declaration: false, sourceMap: false };
  const virtual = new Map<string, Snippet>();
  const texts = new Map<string, string>();
  checked.forEach((snippet, at) => {
    const file = join(root, 'packages/store-postgres/__snippets__', `${at}-${snippet.page.replaceAll('/', '_')}.ts`);
    virtual.set(file, snippet);
    texts.set(file, `${snippet.given.replaceAll('\n', ' ')} ${snippet.code}\nexport {};\n`);
  });
  const host = ts.createCompilerHost(options, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, language, onError, fresh) => {
    const text = texts.get(fileName);
    return text === undefined ? getSourceFile(fileName, language, onError, fresh) : ts.createSourceFile(fileName, text, language, true);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => texts.has(fileName) || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => texts.get(fileName) ?? readFile(fileName);
  const program = ts.createProgram({ rootNames: [...texts.keys()], options, host });
  const problems = new Map<Snippet, string[]>();
  for (const [file, snippet] of virtual) {
    const source = program.getSourceFile(file);
    if (source === undefined) throw new Error(`${label(snippet)}: not compiled`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    problems.set(
      snippet,
      diagnostics.map((diagnostic) => {
        const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
        return `${snippet.page}:${snippet.line + line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
      }),
    );
  }
  return problems;
}

/** Runs a snippet as an async function, its imports served from `RUNNABLE_MODULES`. */
async function run(snippet: Snippet): Promise<void> {
  const js = ts.transpileModule(snippet.code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
  const require = (name: string): unknown => {
    const module = RUNNABLE_MODULES[name];
    if (module === undefined) throw new Error(`${label(snippet)}: a run snippet may import only ${Object.keys(RUNNABLE_MODULES).join(', ')}, not ${name}`);
    return module;
  };
  const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<void>;
  const silent = { ...console, log: () => undefined, error: () => undefined };
  await new AsyncFunction('require', 'exports', 'module', 'console', js)(require, {}, { exports: {} }, silent);
}

describe('documentation snippets', () => {
  const checked = snippets.filter((snippet) => snippet.mode !== 'partial');

  it('finds the snippets it is meant to check', () => {
    expect(snippets.filter((snippet) => snippet.page === 'README.md').length).toBeGreaterThan(0);
    expect(checked.length).toBeGreaterThan(0);
  });

  it('every ts snippet not marked partial type-checks against the packages\' sources', () => {
    const problems = [...typeCheck(checked).values()].flat();
    expect(problems, `snippets that no longer compile:\n${problems.join('\n')}`).toEqual([]);
  }, 60_000);

  for (const snippet of snippets.filter((candidate) => candidate.mode === 'run')) {
    it(`${label(snippet)} runs against the in-memory store`, async () => {
      await expect(run(snippet), `${label(snippet)} threw`).resolves.toBeUndefined();
    });
  }
});
