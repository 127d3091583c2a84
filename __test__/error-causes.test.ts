// One error per cause: a missing or unreadable file is ERR_FILE with `path`
// wherever it is named, spec errors give the stage, the JSON path and the
// spec file's own line, record keys the spec does not declare are refused
// or counted (`unknownFields`), and ONNX Runtime prints nothing on stderr
// unless asked to.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Pipeline, Session, Tokenizer, type PipelineResult, type PipelineRowError } from '../index.js'
import { fixture, readJson, rejectsWith, root } from './helpers'

const penguins = (): any => readJson('penguins/pipeline.json')
const records = (): Record<string, unknown>[] => readJson<{ records: Record<string, unknown>[] }>('penguins/records.json').records

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'oxinfer-causes-'))
  copyFileSync(fixture('penguins/penguins.onnx'), join(dir, 'penguins.onnx'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Writes `spec` as a pretty-printed file, as a person would, and returns its path. */
function specFile(name: string, spec: unknown): string {
  const path = join(dir, name)
  writeFileSync(path, typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2) + '\n')
  return path
}

/** A job's outcome: a job that cannot start throws at once, which counts as its rejection here. */
function jobDone(start: () => { done: Promise<unknown> }): Promise<any> {
  try {
    return start().done
  } catch (e) {
    return Promise.reject(e)
  }
}

/** The 1-based line of the first occurrence of `needle` in a file. */
const lineOf = (path: string, needle: string): number => readFileSync(path, 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1

describe('a missing or unreadable file is ERR_FILE with its path, wherever it is named', () => {
  it('a model, a spec, the model a spec names, a tokenizer, a job input and a job output', async () => {
    const missing = join(dir, 'nope', 'missing.onnx')
    let e = await rejectsWith(Session.create(missing), 'ERR_FILE')
    expect(e.path).toBe(missing)
    expect(e.message).toContain(missing)
    e = await rejectsWith(Session.create(dir), 'ERR_FILE')
    expect([e.path, e.message.includes('not a regular file')]).toEqual([dir, true])

    e = await rejectsWith(Tokenizer.fromFile(join(dir, 'tokenizer.json')), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'tokenizer.json'))

    e = await rejectsWith(Pipeline.load(join(dir, 'missing.json')), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'missing.json'))

    const spec = penguins()
    spec.model = 'elsewhere.onnx'
    e = await rejectsWith(Pipeline.load(specFile('elsewhere.json', spec)), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'elsewhere.onnx'))

    const p = await Pipeline.load(specFile('ok.json', penguins()))
    e = await rejectsWith(jobDone(() => p.runJob(join(dir, 'missing.csv'))), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'missing.csv'))
    const csv = join(dir, 'in.csv')
    writeFileSync(csv, 'island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\nBiscoe,45,15,210,5000,MALE\n')
    e = await rejectsWith(jobDone(() => p.runJob(csv, { output: join(dir, 'no', 'such', 'out.jsonl') })), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'no', 'such', 'out.jsonl'))
    e = await rejectsWith(p.save(join(dir, 'no', 'such', 'spec.json')), 'ERR_FILE')
    expect(e.path).toBe(join(dir, 'no', 'such', 'spec.json'))
    await p.dispose()
  })
})

describe('spec errors name the stage, the JSON path and the line in the spec file', () => {
  it('an unknown field inside a stage points at preprocess[2].fields[1] and its line', async () => {
    const spec = penguins()
    spec.preprocess[2].fields = ['island', 'sexx']
    const path = specFile('typo.json', spec)
    const e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect(e.stage).toBe('preprocess[2] (impute)')
    expect(e.jsonPath).toBe('preprocess[2].fields[1]')
    expect(e.path).toBe(path)
    expect(e.line).toBe(lineOf(path, '"sexx"'))
    expect(e.column).toBeGreaterThan(1)
    expect(e.message).toContain(`unknown field 'sexx'`)
    expect(e.message).toContain(`${path}:${e.line}:${e.column}`)
    // The same spec as an object: the JSON path, no file line.
    const o = await rejectsWith(Pipeline.create(spec, { baseDir: dir }), 'ERR_INVALID_SPEC')
    expect([o.jsonPath, o.line, o.path]).toEqual(['preprocess[2].fields[1]', undefined, undefined])
  })

  it('a misspelt key, a wrong type, a bad feature name, a bad version and broken JSON', async () => {
    let spec = penguins()
    spec.preprocess[1].fieldz = spec.preprocess[1].fields
    let path = specFile('key.json', spec)
    let e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect([e.stage, e.jsonPath, e.line]).toEqual(['preprocess[1] (standard_scale)', 'preprocess[1].fieldz', lineOf(path, '"fieldz"')])
    expect(e.message).toMatch(/unknown field `fieldz`/)

    spec = penguins()
    spec.fields[3].type = 'numbr'
    path = specFile('type.json', spec)
    e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect([e.jsonPath, e.line]).toEqual(['fields[3].type', lineOf(path, '"numbr"')])
    expect(e.message).toMatch(/unknown variant `numbr`, expected one of `number`, `integer`, `boolean`, `category`, `array`, `list`, `text`, `image`/)

    spec = penguins()
    spec.features[0].names[1] = 'bill_lenght_mm'
    path = specFile('feature.json', spec)
    e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect([e.stage?.startsWith('features[0]'), e.jsonPath, e.line]).toEqual([true, 'features[0].names[1]', lineOf(path, '"bill_lenght_mm"')])

    spec = penguins()
    spec.version = 2
    path = specFile('version.json', spec)
    e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect([e.stage, e.jsonPath, e.line]).toEqual(['version', 'version', lineOf(path, '"version"')])
    expect(e.message).toMatch(/unsupported spec version 2; this oxinfer reads version 1/)

    path = specFile('broken.json', '{\n  "version": 1,\n  "model": "penguins.onnx",\n  "fields": [,]\n}\n')
    e = await rejectsWith(Pipeline.load(path), 'ERR_INVALID_SPEC')
    expect(e.message).toMatch(/not valid JSON: .*line 4 column/)
    expect([e.path, e.line, e.column]).toEqual([path, 4, 14])
    expect(e.message).toContain(`${path}:4:14`)

    // A value JSON cannot hold is a spec error too, not a TypeError.
    await rejectsWith(Pipeline.create({ ...penguins(), name: 10n } as never), 'ERR_INVALID_SPEC')
  })
})

describe('record keys the spec does not declare (unknownFields)', () => {
  it("'error' (the default) refuses a misspelt key and suggests the field; 'ignore' runs and counts", async () => {
    const strict = await Pipeline.load(specFile('strict.json', penguins()))
    expect(strict.unknownFields).toBe('error')
    const [good] = records()
    const { sex, ...rest } = good
    const typo = { ...rest, sexx: sex }
    let e = await rejectsWith(strict.run(typo), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([0, 'sexx'])
    expect(e.message).toMatch(/unknown field 'sexx' \(did you mean 'sex'\?\)/)
    e = await rejectsWith(strict.runBatch([good, { ...good, id: 7 }]), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([1, 'id'])
    expect(e.message).toMatch(/the spec's fields: island, /)
    const mixed = await strict.runBatch([good, typo], { errors: 'return' })
    expect((mixed[0] as PipelineResult).label).toBeTypeOf('string')
    expect((mixed[1] as PipelineRowError).error.field).toBe('sexx')
    e = await rejectsWith(strict.runBatch({ island: ['Biscoe'], weight: [1] }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('weight')
    expect(strict.ignoredFields).toBe(0)
    // A CSV file job with an undeclared column is refused at its start.
    const csv = join(dir, 'labelled.csv')
    writeFileSync(csv, 'island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,species\nBiscoe,45,15,210,5000,MALE,Gentoo\n')
    e = await rejectsWith(jobDone(() => strict.runJob(csv, { output: join(dir, 'labelled.jsonl') })), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('species')
    expect(e.message).toMatch(/does not declare: species; pass unknownFields: 'ignore'/)
    await strict.dispose()

    const lenient = await Pipeline.load(specFile('lenient.json', penguins()), { unknownFields: 'ignore' })
    const out = await lenient.runBatch([{ ...good, id: 1, note: 'x' }, good])
    expect(out).toHaveLength(2)
    expect(lenient.ignoredFields).toBe(2)
    await lenient.run({ ...good, id: 2 })
    expect(lenient.ignoredFields).toBe(3)
    const summary = await lenient.runJob(csv, { output: join(dir, 'labelled.jsonl') }).done
    expect(summary.rows).toBe(1)
    await rejectsWith(Pipeline.load(join(dir, 'lenient.json'), { unknownFields: 'warn' as never }), 'ERR_INVALID_ARGUMENT')
    await lenient.dispose()
  })
})

describe('ONNX Runtime logging', () => {
  const script = (configure: string): string => `
    const { Session, configure } = require(${JSON.stringify(root)})
    ${configure}
    Session.create(Buffer.from('not a model at all')).then(() => console.log('loaded'), (e) => console.log(e.code))`

  it('prints nothing on stderr by default, and its log when configure({ logLevel }) asks', () => {
    const quiet = spawnSync(process.execPath, ['-e', script('')], { encoding: 'utf8' })
    expect(quiet.stdout.trim()).toBe('ERR_MODEL_LOAD')
    expect(quiet.stderr).toBe('')
    const loud = spawnSync(process.execPath, ['-e', script("configure({ logLevel: 'verbose' })")], { encoding: 'utf8' })
    expect(loud.stdout.trim()).toBe('ERR_MODEL_LOAD')
    expect(loud.stderr).toMatch(/onnxruntime|\[[VIWE]:/)
  })
})

describe('sizes that would exhaust memory are refused, and odd values never panic', () => {
  it('padded token lengths past 2^20, resizes past maxPixels, and a timeout of 1e308 ms', async () => {
    const { ImageProcessor, Tensor } = await import('../index.js')
    const tok = await Tokenizer.fromFile(fixture('text/qwen3-tokenizer.json'))
    let e = await rejectsWith(tok.encodeBatch(['hi'], { padding: 'longest', padToMultipleOf: 2 ** 31 }), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toMatch(/padToMultipleOf must be at most 1048576 tokens/)
    await rejectsWith(tok.encodeBatch(['hi'], { padding: 'max_length', maxLength: 2 ** 31 }), 'ERR_INVALID_ARGUMENT')
    const png = readFileSync(join(fixture('images'), readdirSyncPng()))
    e = await rejectsWith(new ImageProcessor({ resize: { shorter: 65535 } }).run([png]), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/more than maxPixels/)
    const s = await Session.create(fixture('tiny_mlp.onnx'), { inlineThresholdMicros: 0 })
    const x = new Tensor('float32', new Float32Array(16), [1, 16])
    const [a, b] = await Promise.all([s.run({ x }), s.run({ x }, { timeoutMs: 1e308 })])
    expect(b.y.data).toEqual(a.y.data)
    await s.dispose()
  })
})

describe('a detached typed array as a column', () => {
  it('is ERR_INVALID_INPUT naming the column (found by the 1M fuzz run)', async () => {
    const p = await Pipeline.load(specFile('columns.json', penguins()))
    const col = new Float64Array(0)
    structuredClone(col.buffer, { transfer: [col.buffer] })
    const e = await rejectsWith(p.runBatch({ bill_length_mm: col }), 'ERR_INVALID_INPUT')
    expect([e.field, e.message]).toEqual(['bill_length_mm', expect.stringMatching(/detached/)])
    await p.dispose()
  })
})

describe('a pair whose stride does not fit maxLength', () => {
  it('is ERR_INVALID_ARGUMENT, with nothing on stderr', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `const { Tokenizer } = require(${JSON.stringify(root)})
        Tokenizer.fromFile(${JSON.stringify(fixture('text/qwen3-tokenizer.json'))})
          .then((t) => t.encodeBatch(['hello world'], { pairs: ['foo bar'], maxLength: 3, stride: 1 }))
          .then(() => console.log('ok'), (e) => console.log(e.code, e.message))`,
      ],
      { encoding: 'utf8' },
    )
    expect(r.stdout).toMatch(/^ERR_INVALID_ARGUMENT stride 1 does not fit maxLength/)
    expect(r.stderr).toBe('')
  })
})

/** The first PNG among the image fixtures. */
function readdirSyncPng(): string {
  return readdirSync(fixture('images')).find((f) => f.endsWith('.png'))!
}
