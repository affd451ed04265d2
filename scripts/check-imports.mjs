#!/usr/bin/env node
// `npm run lint` runs this: the house's import rules (docs/architecture.md), checked on every
// TypeScript file of the product folders, not by hope.
//
//   1. Folders import one way: cli → gateway | client, gateway → routes → native,
//      client → native; every folder may use core/, and core/ uses nothing of ours.
//   2. No cycle between files at run time (`import type` is erased and does not count; a
//      dynamic import() does, it runs).
//
// Prints each violation as `from → to (why)` and exits 1 when there is one.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What each folder may import, besides itself (the transitive closure of the arrows above). */
export const ALLOWED = {
  core: [],
  native: ['core'],
  routes: ['native', 'core'],
  gateway: ['routes', 'native', 'core'],
  client: ['native', 'core'],
  cli: ['gateway', 'routes', 'client', 'native', 'core'],
};

function sourcesOf(dir) {
  const out = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourcesOf(rel));
    else if (entry.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

// An import or re-export clause holds only names, braces, commas, stars and whitespace.
const STATIC = /^\s*(import|export)\s+(type\s+)?[\w$\s{},*]*?\bfrom\s*['"]([^'"]+)['"]/gm;
const BARE = /^\s*import\s*['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Each import of a file: the specifier and whether it survives compilation. */
export function importsOf(text) {
  const found = [];
  for (const m of text.matchAll(STATIC)) found.push({ spec: m[3], runtime: m[2] === undefined });
  for (const m of text.matchAll(BARE)) found.push({ spec: m[1], runtime: true });
  for (const m of text.matchAll(DYNAMIC)) found.push({ spec: m[1], runtime: true });
  return found;
}

function resolve(from, spec) {
  if (!spec.startsWith('.')) return undefined;
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const candidate of [target.replace(/\.js$/, '.ts'), target.replace(/\.js$/, '.d.ts'), target]) {
    if (existsSync(path.join(root, candidate))) return candidate;
  }
  return target;
}

function folderOf(file) {
  return file.split('/')[0];
}

export function check() {
  const problems = [];
  const graph = new Map();
  const files = Object.keys(ALLOWED).flatMap((dir) =>
    existsSync(path.join(root, dir)) ? sourcesOf(dir) : [],
  );
  for (const file of files) {
    const edges = [];
    for (const { spec, runtime } of importsOf(readFileSync(path.join(root, file), 'utf8'))) {
      const target = resolve(file, spec);
      if (target === undefined) continue;
      const [from, to] = [folderOf(file), folderOf(target)];
      if (from !== to && !ALLOWED[from].includes(to)) {
        problems.push(`${file} → ${target} (${from}/ may not import ${to}/)`);
      }
      if (runtime) edges.push(target);
    }
    graph.set(file, edges);
  }
  // Tarjan's strongly connected components: any component of two or more files is a cycle.
  let index = 0;
  const stack = [];
  const state = new Map();
  const strongConnect = (v) => {
    const s = { index, low: index, onStack: true };
    index++;
    state.set(v, s);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      const t = state.get(w);
      if (t === undefined) {
        strongConnect(w);
        s.low = Math.min(s.low, state.get(w).low);
      } else if (t.onStack) s.low = Math.min(s.low, t.index);
    }
    if (s.low === s.index) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        state.get(w).onStack = false;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) problems.push(`cycle: ${component.sort().join(' ↔ ')}`);
    }
  };
  for (const file of graph.keys()) if (!state.has(file)) strongConnect(file);
  return { files: files.length, problems };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { files, problems } = check();
  for (const problem of problems) process.stderr.write(`check-imports: ${problem}\n`);
  if (problems.length > 0) {
    process.stderr.write(
      `check-imports: ${problems.length} problem(s) in ${files} files (docs/architecture.md)\n`,
    );
    process.exitCode = 1;
  } else process.stdout.write(`check-imports: ${files} files, imports run one way, no cycles\n`);
}
