/**
 * `npm run check:imports [-- --root DIR]`
 *
 * Reads every import of `DIR/src/**\/*.ts` (DIR defaults to the checkout) and fails, exit 1, on
 * any import cycle and on any import that runs up a layer. Every import counts: `import`,
 * `import type`, `export … from`, `import()` and `import('…').T` in types, since a type-only
 * import is still a dependency of the design (and a cycle of them still tangles the modules).
 *
 * The layers, top to bottom. A module may import its own layer (when that stays acyclic) and the
 * layers its row lists; nothing else in `src/`. Packages and `node:` modules are not checked.
 *
 * | layer     | files                                        | may import                                                            |
 * |-----------|----------------------------------------------|-----------------------------------------------------------------------|
 * | wiring    | main.ts, app.ts, cli.ts, cli/                | everything below                                                      |
 * | client    | client/                                      | contract (the producers' typed client: the wire and nothing of the service) |
 * | http      | http/                                        | queue, jobs, use-cases and the bottom                                 |
 * | queue     | queue/                                       | jobs, use-cases and the bottom                                        |
 * | jobs      | jobs/                                        | use-cases and the bottom                                              |
 * | use-cases | use-cases/                                   | the bottom                                                            |
 * | bottom:   |                                              |                                                                       |
 * | db        | db/                                          | domain, contract, support (repositories: SQL only, no rules above)    |
 * | lock      | lock/                                        | infra (the Redis client), support                                     |
 * | infra     | infra/                                       | support (private Redis and Postgres, connections)                    |
 * | uploads   | uploads/                                     | domain, contract, support (CSV files to wire payloads, no I/O)        |
 * | domain    | domain/                                      | contract (pure rules: no I/O, so no log, config or metrics)           |
 * | contract  | contract/                                    | nothing (the wire schemas, the lowest layer)                          |
 * | support   | config.ts, log.ts, metrics.ts                | nothing but each other (leaves every non-pure layer may use)          |
 *
 * A file under `src/` that no row names fails the check too: place it in the table first.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';

interface Layer {
  name: string;
  /** Paths relative to `src/`: a file (`app.ts`) or a directory (`cli/`). */
  files: string[];
  mayImport: string[];
}

const BOTTOM = ['db', 'lock', 'infra', 'uploads', 'domain', 'contract', 'support'];

const LAYERS: Layer[] = [
  {
    name: 'wiring',
    files: ['main.ts', 'app.ts', 'cli.ts', 'cli/'],
    mayImport: ['http', 'queue', 'jobs', 'use-cases', ...BOTTOM],
  },
  { name: 'client', files: ['client/'], mayImport: ['contract'] },
  { name: 'http', files: ['http/'], mayImport: ['queue', 'jobs', 'use-cases', ...BOTTOM] },
  { name: 'queue', files: ['queue/'], mayImport: ['jobs', 'use-cases', ...BOTTOM] },
  { name: 'jobs', files: ['jobs/'], mayImport: ['use-cases', ...BOTTOM] },
  { name: 'use-cases', files: ['use-cases/'], mayImport: BOTTOM },
  { name: 'db', files: ['db/'], mayImport: ['domain', 'contract', 'support'] },
  { name: 'lock', files: ['lock/'], mayImport: ['infra', 'support'] },
  { name: 'infra', files: ['infra/'], mayImport: ['support'] },
  { name: 'uploads', files: ['uploads/'], mayImport: ['domain', 'contract', 'support'] },
  { name: 'domain', files: ['domain/'], mayImport: ['contract'] },
  { name: 'contract', files: ['contract/'], mayImport: [] },
  { name: 'support', files: ['config.ts', 'log.ts', 'metrics.ts'], mayImport: [] },
];

/** One import of one module, both as paths relative to the root (`src/db/programs.ts`). */
interface ImportEdge {
  from: string;
  to: string;
}

export interface ImportReport {
  modules: number;
  /** Each cycle as its path, first module repeated at the end. */
  cycles: string[][];
  upward: { from: string; to: string; fromLayer: string; toLayer: string }[];
  /** Files under `src/` in no layer of the table. */
  unplaced: string[];
  /** Relative specifiers that name no file, or a `.ts` file outside `src/`. */
  unresolved: { from: string; specifier: string }[];
}

function layerOf(file: string): Layer | undefined {
  const inSrc = file.replace(/^src\//, '');
  return LAYERS.find((l) => l.files.some((f) => (f.endsWith('/') ? inSrc.startsWith(f) : inSrc === f)));
}

function listTsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return listTsFiles(full);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Every module specifier the file names, static, dynamic or in a type position. */
function specifiersOf(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e)) found.push(e.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) found.push(arg.text);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal)) found.push(arg.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * The `.ts` file a relative specifier names under NodeNext resolution: `./x.js` is `./x.ts`;
 * `./x.ts` and `./x` (and `./x/index.ts`) are accepted too. Other existing files (JSON) resolve to
 * themselves; undefined when nothing exists.
 */
function resolveRelative(fromAbs: string, specifier: string): string | undefined {
  const base = path.resolve(path.dirname(fromAbs), specifier);
  const candidates = [base.replace(/\.(m|c)?js$/, '.$1ts'), base, `${base}.ts`, path.join(base, 'index.ts')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

/** The import graph of `root/src`, as paths relative to `root` with `/` separators. */
function readImportGraph(root: string): {
  files: string[];
  edges: ImportEdge[];
  unresolved: ImportReport['unresolved'];
} {
  const srcDir = path.join(root, 'src');
  const rel = (abs: string) => path.relative(root, abs).split(path.sep).join('/');
  const absFiles = listTsFiles(srcDir).sort();
  const edges: ImportEdge[] = [];
  const unresolved: ImportReport['unresolved'] = [];
  for (const abs of absFiles) {
    for (const specifier of specifiersOf(abs, readFileSync(abs, 'utf8'))) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const target = resolveRelative(abs, specifier);
      if (target === undefined || (target.endsWith('.ts') && !rel(target).startsWith('src/'))) {
        unresolved.push({ from: rel(abs), specifier });
      } else if (target.endsWith('.ts')) {
        edges.push({ from: rel(abs), to: rel(target) });
      }
    }
  }
  return { files: absFiles.map(rel), edges, unresolved };
}

/** Strongly connected components (Tarjan); a module is in a cycle iff its component has an edge inside. */
function stronglyConnected(nodes: string[], next: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  const strong = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component);
    }
  };
  for (const v of nodes) if (!index.has(v)) strong(v);
  return components;
}

/** The shortest path from `start` to `goal` inside `within` (breadth first), both ends included. */
function shortestPath(start: string, goal: string, next: Map<string, string[]>, within: Set<string>): string[] {
  const cameFrom = new Map<string, string>([[start, start]]);
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    if (v === goal) break;
    for (const w of next.get(v) ?? []) {
      if (within.has(w) && !cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  const way = [goal];
  while (way[0] !== start) way.unshift(cameFrom.get(way[0]!)!);
  return way;
}

/**
 * The cycles to break: for every import inside a strongly connected component, the shortest cycle
 * through it, each cycle once (rotated to start at its smallest module). So every import that
 * takes part in some cycle is shown in at least one, without listing the exponentially many.
 */
function findCycles(files: string[], edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    const list = next.get(from) ?? [];
    if (!list.includes(to)) list.push(to);
    next.set(from, list);
  }
  const cycles = new Map<string, string[]>();
  for (const component of stronglyConnected(files, next)) {
    const within = new Set(component);
    for (const from of component) {
      for (const to of next.get(from) ?? []) {
        if (!within.has(to)) continue;
        const loop = from === to ? [from] : [from, ...shortestPath(to, from, next, within).slice(0, -1)];
        const first = loop.indexOf([...loop].sort()[0]!);
        const rotated = [...loop.slice(first), ...loop.slice(0, first)];
        cycles.set(rotated.join(' '), [...rotated, rotated[0]!]);
      }
    }
  }
  return [...cycles.values()].sort((a, b) => a.join(' ').localeCompare(b.join(' ')));
}

export function checkImports(root: string): ImportReport {
  const { files, edges, unresolved } = readImportGraph(root);
  const upward: ImportReport['upward'] = [];
  for (const { from, to } of edges) {
    const fromLayer = layerOf(from);
    const toLayer = layerOf(to);
    if (!fromLayer || !toLayer || fromLayer === toLayer) continue;
    if (!fromLayer.mayImport.includes(toLayer.name)) {
      upward.push({ from, to, fromLayer: fromLayer.name, toLayer: toLayer.name });
    }
  }
  return {
    modules: files.length,
    cycles: findCycles(files, edges),
    upward,
    unplaced: files.filter((f) => !layerOf(f)),
    unresolved,
  };
}

export function describeReport(report: ImportReport): string[] {
  const lines: string[] = [];
  if (report.cycles.length) {
    lines.push(`${report.cycles.length} import cycle(s):`);
    for (const cycle of report.cycles) lines.push(`  ${cycle.join(' -> ')}`);
  }
  if (report.upward.length) {
    lines.push(`${report.upward.length} import(s) against the layers:`);
    for (const u of report.upward) {
      const allowed = LAYERS.find((l) => l.name === u.fromLayer)!.mayImport;
      lines.push(
        `  ${u.from} -> ${u.to}: ${u.fromLayer} may not import ${u.toLayer} (it may import ${[u.fromLayer, ...allowed].join(', ')})`,
      );
    }
  }
  if (report.unplaced.length) {
    lines.push(`${report.unplaced.length} file(s) in no layer (add them to the table in scripts/check-imports.ts):`);
    for (const f of report.unplaced) lines.push(`  ${f}`);
  }
  if (report.unresolved.length) {
    lines.push(`${report.unresolved.length} relative import(s) naming no file under src/:`);
    for (const u of report.unresolved) lines.push(`  ${u.from}: '${u.specifier}'`);
  }
  return lines;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: { root: { type: 'string', default: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..') } },
  });
  const root = path.resolve(values.root!);
  if (!existsSync(path.join(root, 'src'))) {
    console.error(`check-imports: no src/ under ${root}`);
    process.exit(2);
  }
  const report = checkImports(root);
  const problems = describeReport(report);
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log(`check-imports: ${report.modules} modules, no cycle, no import against the layers`);
}
