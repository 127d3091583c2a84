// The shape of the code: modules under src/ import one way (no cycles, in
// the compiled JS or in the sources), each is small enough to read at a
// sitting and says what it is for, only src/native.ts loads the addon, and
// index.ts only re-exports; the Rust modules of each crate import one way too.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

import { require, root } from './helpers'

const madge = require('madge') as (
  path: string | string[],
  config: Record<string, unknown>,
) => Promise<{ circular(): string[][]; obj(): Record<string, string[]> }>

const MAX_LINES = 600

function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...sources(p))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p)
  }
  return out.sort()
}

const src = sources(join(root, 'src'))
/** The package's entry points: the library, the CLI (its bin), the Fastify plugin (oxinfer/fastify) and the onnxruntime-common backend (oxinfer/ort, oxinfer/register). */
const ENTRIES = ['index', 'src/cli/main', 'src/fastify', 'src/ort/index', 'src/ort/register']
const rel = (p: string): string => relative(root, p).split('\\').join('/')

describe('module structure', () => {
  it('finds the modules', () => {
    expect(src.length).toBeGreaterThan(10)
  })

  it('the compiled JS has no import cycles, and reaches every module from the entry points', async () => {
    for (const f of src) expect(existsSync(f.replace(/\.ts$/, '.js')), `${rel(f)} is not compiled; run \`npx tsc -p tsconfig.json\``).toBe(true)
    const graph = await madge(ENTRIES.map((e) => join(root, `${e}.js`)), { baseDir: root, fileExtensions: ['js'], excludeRegExp: [/^binding\.js$/] })
    expect(graph.circular()).toEqual([])
    const reached = new Set(Object.keys(graph.obj()))
    expect(src.map(rel).filter((f) => !reached.has(f.replace(/\.ts$/, '.js')))).toEqual([])
  })

  it('the sources have no import cycles, type-only imports included', async () => {
    const graph = await madge(ENTRIES.map((e) => join(root, `${e}.ts`)), {
      baseDir: root,
      fileExtensions: ['ts'],
      tsConfig: join(root, 'tsconfig.json'),
      detectiveOptions: { ts: { skipTypeImports: false } },
    })
    expect(graph.circular()).toEqual([])
    // Every source module, index.ts and the addon's generated types (binding.d.ts).
    expect(Object.keys(graph.obj()).filter((f) => f !== 'binding.d.ts').length).toBe(src.length + 1)
  })

  it(`every module under src/ has at most ${MAX_LINES} lines and opens with a comment saying what it is for`, () => {
    const bad: string[] = []
    for (const f of src) {
      const text = readFileSync(f, 'utf8')
      const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
      if (lines > MAX_LINES) bad.push(`${rel(f)}: ${lines} lines`)
      // A bin may start with its shebang line.
      if (!/^(#![^\n]*\n)?(\/\/|\/\*)/.test(text)) bad.push(`${rel(f)}: no opening comment`)
    }
    expect(bad).toEqual([])
  })

  it('only src/native.ts loads the addon', () => {
    const loaders = [...src, join(root, 'index.ts')].filter((f) => /require\(['"][./]*binding(\.js)?['"]\)/.test(readFileSync(f, 'utf8')))
    expect(loaders.map(rel)).toEqual(['src/native.ts'])
  })

  it('index.ts only re-exports', () => {
    const file = ts.createSourceFile('index.ts', readFileSync(join(root, 'index.ts'), 'utf8'), ts.ScriptTarget.ES2022)
    const other = file.statements.filter((s) => !(ts.isExportDeclaration(s) && s.moduleSpecifier !== undefined))
    expect(other.map((s) => s.getText(file))).toEqual([])
  })

  it.each(['crates/oxinfer-core/src', 'crates/oxinfer-node/src', 'crates/oxinfer-server/src'])('the Rust modules of %s import one way (no cycles), and each opens with a comment', (dir) => {
    const graph = rustModules(join(root, dir))
    expect(Object.keys(graph).length).toBeGreaterThan(8)
    expect(cycles(graph)).toEqual([])
  })

  it('the Rust cycle check finds a cycle when there is one', () => {
    expect(cycles({ a: new Set(['b']), b: new Set(['c']), c: new Set(['a']), d: new Set(['a']) })).toEqual(['a -> b -> c -> a'])
  })
})

/**
 * A crate's modules (`a::b` for a/b.rs or a/b/mod.rs) and the modules each
 * names through `crate::` or `super::` paths, outside `#[cfg(test)]` code. A
 * module's own ancestors and descendants do not count (a parent declares and
 * re-exports its children).
 */
function rustModules(src: string): Record<string, Set<string>> {
  const text: Record<string, string> = {}
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.rs')) {
        const parts = relative(src, p).slice(0, -3).split(/[\\/]/)
        if (parts[parts.length - 1] === 'mod') parts.pop()
        const name = parts.join('::')
        if (name === 'lib' || name === 'main') continue
        const body = readFileSync(p, 'utf8')
        expect(/^\/\/[/!]/.test(body), `${relative(root, p)} opens with a comment`).toBe(true)
        text[name] = body.replace(/#\[cfg\(test\)\][\s\S]*/, '')
      }
    }
  }
  walk(src)
  const resolve = (path: string): string | undefined => {
    const parts = path.split('::')
    for (let k = parts.length; k > 0; k--) {
      const m = parts.slice(0, k).join('::')
      if (m in text) return m
    }
    return undefined
  }
  const graph: Record<string, Set<string>> = {}
  for (const [m, body] of Object.entries(text)) {
    const parent = m.split('::').slice(0, -1).join('::')
    const deps = new Set<string>()
    for (const [, p] of body.matchAll(/crate::((?:\w+::)*\w+)/g)) deps.add(resolve(p) ?? '')
    for (const [, p] of body.matchAll(/super::((?:\w+::)*\w+)/g)) deps.add(resolve(parent ? `${parent}::${p}` : p) ?? '')
    graph[m] = new Set([...deps].filter((d) => d !== '' && d !== m && !m.startsWith(`${d}::`) && !d.startsWith(`${m}::`)))
  }
  return graph
}

/** Every import cycle of `graph`, each once, starting at its smallest module. */
function cycles(graph: Record<string, Set<string>>): string[] {
  const found = new Set<string>()
  const visit = (n: string, path: string[]): void => {
    for (const d of graph[n] ?? []) {
      const at = path.indexOf(d)
      if (at >= 0) {
        const loop = path.slice(at)
        const start = loop.indexOf([...loop].sort()[0])
        found.add([...loop.slice(start), ...loop.slice(0, start), loop[start]].join(' -> '))
      } else if (path.length < 16) visit(d, [...path, d])
    }
  }
  for (const n of Object.keys(graph)) visit(n, [n])
  return [...found].sort()
}

