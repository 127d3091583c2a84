// Types: the declarations the package publishes (index.d.ts and src/**/*.d.ts,
// emitted here in memory from the sources with tsconfig.json's options, as
// `tsc -p tsconfig.json` writes them) narrow as documented, and publish
// nothing internal. The fixtures in __test__/types/ import 'oxinfer' as a
// consumer does and must compile; each `// @ts-expect-error [TSxxxx] why`
// marks a line that must fail, with that error code when one is given.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve, sep } from 'node:path'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'

import { root } from './helpers'

const fixturesDir = join(root, '__test__', 'types')
const fixtures = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .map((f) => join(fixturesDir, f))

const rel = (f: string): string => relative(root, f).split(sep).join('/')
const format = (ds: readonly ts.Diagnostic[]): string =>
  ts.formatDiagnostics(ds, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' })

/** Declarations emitted from the sources (absolute .d.ts path → text), and the emit's diagnostics. */
function emitDeclarations(): { dts: Map<string, string>; diagnostics: readonly ts.Diagnostic[]; sources: readonly ts.SourceFile[] } {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
    },
  })
  if (!parsed) throw new Error('tsconfig.json could not be read')
  const program = ts.createProgram(parsed.fileNames, { ...parsed.options, noEmit: false, emitDeclarationOnly: true, declaration: true })
  const dts = new Map<string, string>()
  const result = program.emit(undefined, (file, text) => dts.set(resolve(file), text), undefined, true)
  const sources = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !f.fileName.includes('node_modules'))
  return { dts, diagnostics: [...program.getSyntacticDiagnostics(), ...result.diagnostics], sources }
}

/** Whether `file` is one of the package's sources (hidden: a consumer sees the declarations only). */
const isSource = (file: string): boolean => file === join(root, 'index.ts') || (file.startsWith(join(root, 'src') + sep) && file.endsWith('.ts') && !file.endsWith('.d.ts'))
/** Whether `file` is a published declaration file (served from the emitted ones, not the disk's). */
const isPublished = (file: string): boolean => file === join(root, 'index.d.ts') || (file.startsWith(join(root, 'src') + sep) && file.endsWith('.d.ts'))

const consumerOptions: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.CommonJS,
  moduleResolution: ts.ModuleResolutionKind.Node10,
  lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
  types: ['node'],
  typeRoots: [join(root, 'node_modules', '@types')],
  esModuleInterop: true,
  baseUrl: root,
  paths: { oxinfer: ['index'] },
}

/** A compiler host that sees the emitted declarations instead of the sources, and `overrides` instead of files on disk. */
function consumerHost(dts: Map<string, string>, overrides: Map<string, string>, cache: Map<string, ts.SourceFile>): ts.CompilerHost {
  const host = ts.createCompilerHost(consumerOptions)
  const read = (f: string): string | undefined => {
    const file = resolve(f)
    if (overrides.has(file)) return overrides.get(file)
    if (isSource(file)) return undefined
    if (isPublished(file)) return dts.get(file)
    return ts.sys.readFile(file)
  }
  host.fileExists = (f) => read(f) !== undefined
  host.readFile = read
  host.getSourceFile = (f, languageVersion) => {
    const file = resolve(f)
    const shared = !overrides.has(file)
    if (shared && cache.has(file)) return cache.get(file)
    const text = read(file)
    if (text === undefined) return undefined
    const sf = ts.createSourceFile(f, text, languageVersion, true)
    if (shared) cache.set(file, sf)
    return sf
  }
  return host
}

/** The `// @ts-expect-error` lines of a fixture: the 0-based line each one covers, and the code it names. */
function expectations(text: string): Map<number, string | undefined> {
  const out = new Map<number, string | undefined>()
  text.split('\n').forEach((line, i) => {
    const m = /^\s*\/\/ @ts-expect-error(?:\s+\[TS(\d+)\])?/.exec(line)
    if (m) out.set(i + 1, m[1])
  })
  return out
}

const lineOf = (d: ts.Diagnostic): number => d.file!.getLineAndCharacterOfPosition(d.start!).line

describe('published types', () => {
  let dts: Map<string, string>
  let sources: readonly ts.SourceFile[]
  const cache = new Map<string, ts.SourceFile>()
  let program: ts.Program

  beforeAll(() => {
    const emitted = emitDeclarations()
    expect(format(emitted.diagnostics)).toBe('')
    dts = emitted.dts
    sources = emitted.sources
    const roots = [join(root, 'index.d.ts'), ...[...dts.keys()].filter((f) => f !== join(root, 'index.d.ts')), ...fixtures]
    program = ts.createProgram(roots, { ...consumerOptions, skipLibCheck: false }, consumerHost(dts, new Map(), cache))
  })

  it('emits index.d.ts and a declaration file per source module', () => {
    expect(dts.has(join(root, 'index.d.ts'))).toBe(true)
    expect(dts.size).toBe(sources.length)
    expect(fixtures.map(rel)).toEqual(expect.arrayContaining(['__test__/types/internals.ts', '__test__/types/results.ts', '__test__/types/tensor.ts', '__test__/types/text.ts']))
  })

  it('the published declarations compile on their own, every one of them', () => {
    const ds = ts.getPreEmitDiagnostics(program).filter((d) => d.file !== undefined && isPublished(resolve(d.file.fileName)))
    expect(format(ds)).toBe('')
  })

  it('the fixtures compile against them, and every @ts-expect-error is needed', () => {
    const ds = fixtures.flatMap((f) => ts.getPreEmitDiagnostics(program, program.getSourceFile(f)))
    expect(format(ds)).toBe('')
  })

  it.each(fixtures.map((f) => [rel(f), f]))('%s: each expected error happens on its line, with its code', (_name, file) => {
    const text = readFileSync(file, 'utf8')
    const expected = expectations(text)
    expect(expected.size).toBeGreaterThan(0)
    // The same fixture with its expectations turned into plain comments.
    const bare = text.replace(/\/\/ @ts-expect-error/g, '// expected error:')
    const p = ts.createProgram([file], { ...consumerOptions, skipLibCheck: true }, consumerHost(dts, new Map([[resolve(file), bare]]), cache))
    const ds = ts.getPreEmitDiagnostics(p, p.getSourceFile(file))
    const unexpected = ds.filter((d) => !expected.has(lineOf(d)))
    expect(format(unexpected)).toBe('')
    const problems: string[] = []
    for (const [line, code] of expected) {
      const here = ds.filter((d) => lineOf(d) === line)
      if (here.length === 0) problems.push(`line ${line + 1}: no error`)
      else if (code !== undefined && !here.some((d) => String(d.code) === code)) {
        problems.push(`line ${line + 1}: expected TS${code}, got ${here.map((d) => `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`).join('; ')}`)
      }
    }
    expect(problems).toEqual([])
  })

  it('no declaration tagged @internal in the sources is published', () => {
    const leaks: string[] = []
    for (const [file, text] of dts) if (text.includes('@internal')) leaks.push(`${rel(file)} mentions @internal`)
    const isInternal = (n: ts.Node): boolean => ts.getJSDocTags(n).some((t) => t.tagName.text === 'internal')
    const nameOf = (n: ts.Node): string | undefined => {
      const name = (n as { name?: ts.Node }).name
      return name && (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name)) ? name.text : name?.getText()
    }
    for (const src of sources) {
      const emitted = dts.get(resolve(src.fileName.replace(/\.ts$/, '.d.ts')))
      if (emitted === undefined) {
        leaks.push(`${rel(src.fileName)}: no declarations emitted`)
        continue
      }
      const out = ts.createSourceFile('x.d.ts', emitted, ts.ScriptTarget.ES2022, true)
      // Top-level declarations and class members of the emitted file, by name.
      const top = new Map<string, ts.Node>()
      for (const s of out.statements) {
        if (ts.isVariableStatement(s)) for (const d of s.declarationList.declarations) top.set(d.name.getText(), d)
        else if (nameOf(s) !== undefined) top.set(nameOf(s)!, s)
      }
      for (const s of src.statements) {
        const decls = ts.isVariableStatement(s) ? s.declarationList.declarations.map((d) => [d, s] as const) : [[s, s] as const]
        for (const [d, tagged] of decls) {
          const name = nameOf(d)
          if (name === undefined) continue
          if (isInternal(tagged) && top.has(name)) leaks.push(`${rel(src.fileName)}: ${name}`)
          if (!ts.isClassDeclaration(d) || !top.has(name)) continue
          const published = top.get(name) as ts.ClassDeclaration
          const members = new Set(published.members.map(nameOf).filter((x) => x !== undefined))
          for (const m of d.members) {
            if (!isInternal(m)) continue
            if (ts.isConstructorDeclaration(m)) {
              // A class may only hide its constructor by making it private.
              leaks.push(`${rel(src.fileName)}: ${name}'s constructor is @internal; make it private instead`)
              continue
            }
            if (members.has(nameOf(m)!)) leaks.push(`${rel(src.fileName)}: ${name}.${nameOf(m)}`)
          }
        }
      }
    }
    expect(leaks).toEqual([])
  })

  it('what index.d.ts reaches declares no native handle, internal symbol or session internals', () => {
    const only = ts.createProgram([join(root, 'index.d.ts')], { ...consumerOptions, skipLibCheck: true }, consumerHost(dts, new Map(), cache))
    const reached = only.getSourceFiles().filter((f) => isPublished(resolve(f.fileName)))
    const names = reached.map((f) => rel(f.fileName)).sort()
    expect(names).toContain('index.d.ts')
    // Modules that are internal through and through stay out of the published graph.
    for (const internal of ['src/hub.d.ts', 'src/session/internal.d.ts', 'src/session/execute.d.ts', 'src/session/outbox.d.ts', 'src/pipeline/encode.d.ts', 'src/pipeline/decode.d.ts', 'src/options.d.ts']) {
      expect(names).not.toContain(internal)
    }
    const problems: string[] = []
    for (const f of reached) {
      const visit = (n: ts.Node): void => {
        if (ts.isIdentifier(n)) {
          // NativeEnum is a type alias of a plain record (the shape of the enum tables), not a handle.
          if (/^Native[A-Z]/.test(n.text) && n.text !== 'NativeEnum') problems.push(`${rel(f.fileName)}: ${n.text}`)
          if (/^(native|nativeHub|kExecute|SessionInternals|internalsOf|registerInternals)$/.test(n.text)) problems.push(`${rel(f.fileName)}: ${n.text}`)
        }
        if (ts.isComputedPropertyName(n)) {
          // Symbol-keyed members: only the well-known protocols.
          const key = n.expression.getText()
          if (key !== 'Symbol.asyncIterator' && key !== 'Symbol.asyncDispose' && key !== 'disposeSymbol') problems.push(`${rel(f.fileName)}: [${key}]`)
        }
        ts.forEachChild(n, visit)
      }
      visit(f)
    }
    expect(problems).toEqual([])
  })
})
