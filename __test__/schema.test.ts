import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Ajv2020 from 'ajv/dist/2020'
import { describe, expect, it } from 'vitest'

import { FIELD_TYPES, POSTPROCESS_OPS, PREPROCESS_OPS, Pipeline, type PipelineSpec } from '../index.js'
import { fromNative } from '../src/errors'
import { native } from '../src/native'
import { fixture, rejectsWith, root } from './helpers'

const schema = JSON.parse(readFileSync(join(root, 'schema', 'pipeline.schema.json'), 'utf8'))
const ajv = new Ajv2020({ allErrors: true, strict: false })
const validate = ajv.compile(schema)
/** A small valid reference profile of the penguins spec's fields and outputs. */
const PROFILE = () => ({
  version: 1,
  rows: 4,
  features: [
    { name: 'bill_length_mm', role: 'input', type: 'number', edges: [40, 45], counts: [1, 2, 1], missing: 0, sample: [35, 41, 44, 50] },
    { name: 'island', role: 'input', type: 'category', counts: [['Biscoe', 3], ['Dream', 1]], missing: 0 },
    { name: 'label', role: 'output', type: 'category', counts: [['Adelie', 4]], missing: 0 },
  ],
})
const penguins = (): PipelineSpec => JSON.parse(readFileSync(fixture('penguins/pipeline.json'), 'utf8'))

describe('the JSON Schema, the TS types and the Rust serde types agree', () => {
  it('the schema accepts the committed specs', () => {
    for (const f of ['penguins/pipeline.json', 'penguins/pipeline.unfitted.json']) {
      const ok = validate(JSON.parse(readFileSync(fixture(f), 'utf8')))
      expect(ok, JSON.stringify(validate.errors)).toBe(true)
    }
  })

  it('the TS op and type lists are the schema enums', () => {
    expect([...FIELD_TYPES]).toEqual(schema.$defs.field.properties.type.enum)
    expect([...PREPROCESS_OPS]).toEqual(schema.$defs.stage.properties.op.enum)
    expect([...POSTPROCESS_OPS]).toEqual(schema.$defs.post.properties.op.enum)
  })

  // Each mutation is checked both ways: the schema and Rust must agree on accept/reject.
  const variants: [string, (s: any) => void][] = [
    ['as is', () => {}],
    ['an extra top-level key', (s) => (s.extra = 1)],
    ['an unknown op', (s) => (s.preprocess[0].op = 'zscore')],
    ['an unknown stage key', (s) => (s.preprocess[0].fill = 1)],
    ['an unknown field type', (s) => (s.fields[0].type = 'float')],
    ['a field with a size', (s) => (s.fields.push({ name: 'emb', type: 'array', size: 4 }))],
    ['a string strategy value', (s) => (s.preprocess[0].strategy = 'mode')],
    ['a clip stage', (s) => s.preprocess.splice(1, 0, { op: 'clip', fields: ['body_mass_g'], min: 0 })],
    ['a robust scale with quantiles', (s) => s.preprocess.splice(1, 0, { op: 'robust_scale', fields: ['body_mass_g'], quantile_range: [10, 90], center: { body_mass_g: 1 }, scale: { body_mass_g: 2 } })],
    ['a minmax range of one number', (s) => s.preprocess.splice(1, 0, { op: 'minmax_scale', fields: ['body_mass_g'], range: [1], data_min: { body_mass_g: 0 }, data_max: { body_mass_g: 1 } })],
    ['an ordinal with unknown_value', (s) => s.preprocess.push({ op: 'ordinal', field: 'island', categories: ['a'], unknown: 'ignore', unknown_value: -2 })],
    ['an unknown policy', (s) => (s.preprocess[3].unknown = 'skip')],
    ['top_k without k', (s) => s.output.postprocess.push({ op: 'top_k' })],
    ['a threshold', (s) => s.output.postprocess.push({ op: 'threshold', min: 0.5 })],
    ['a features entry with missing nan', (s) => (s.features[0].missing = 'nan')],
    ['a features entry with missing skip', (s) => (s.features[0].missing = 'skip')],
    ['session options', (s) => (s.session = { intraOpThreads: 1, poolSize: 2 })],
    ['version 2', (s) => (s.version = 2)],
    ['no output', (s) => delete s.output],
    ['a numeric model path', (s) => (s.model = 5)],
    ['a monitor', (s) => (s.monitor = { reference: PROFILE(), window: 200, checkEvery: 20, thresholds: { alpha: 0.01 } })],
    ['a monitor with an unknown key', (s) => (s.monitor = { reference: PROFILE(), every: 20 })],
    ['a monitor with a window of 1', (s) => (s.monitor = { reference: PROFILE(), window: 1 })],
    ['a monitor with an unknown feature type', (s) => (s.monitor = { reference: { ...PROFILE(), features: [{ name: 'sex', role: 'input', type: 'text', counts: [], missing: 0 }] } })],
    ['a monitor with alpha 1', (s) => (s.monitor = { reference: PROFILE(), thresholds: { alpha: 1 } })],
  ]
  for (const [what, mutate] of variants) {
    it(`${what}`, async () => {
      const s = penguins() as any
      mutate(s)
      const schemaOk = validate(s) as boolean
      let rustOk = true
      try {
        const p = await Pipeline.create(s, { baseDir: fixture('penguins') })
        await p.dispose()
      } catch (e) {
        rustOk = false
        expect(['ERR_INVALID_SPEC', 'ERR_INVALID_ARGUMENT']).toContain((e as { code: string }).code)
      }
      expect(rustOk, `schema says ${schemaOk ? 'valid' : 'invalid'}: ${JSON.stringify(validate.errors)}`).toBe(schemaOk)
    })
  }

  it('the spec round-trips through Rust unchanged', async () => {
    const p = await Pipeline.create(penguins(), { baseDir: fixture('penguins') })
    const unfitted = await Pipeline.load(fixture('penguins/pipeline.unfitted.json'))
    const fitted = await unfitted.fit(JSON.parse(readFileSync(fixture('penguins/records.json'), 'utf8')).records)
    expect(validate(fitted), JSON.stringify(validate.errors)).toBe(true)
    await rejectsWith(Pipeline.create({ ...penguins(), fields: [] }, { baseDir: fixture('penguins') }), 'ERR_INVALID_SPEC')
    await Promise.all([p.dispose(), unfitted.dispose()])
  })
})

describe('the graph spec schema and the Rust parser agree', () => {
  const graphSchema = JSON.parse(readFileSync(join(root, 'schema', 'graph.schema.json'), 'utf8'))
  const validateGraph = ajv.compile(graphSchema)
  const ocr = (): any => JSON.parse(readFileSync(join(root, 'examples', 'ocr', 'graph.json'), 'utf8'))
  /** Whether Rust reads the spec (its syntax and fields; the models are checked when a graph is built). */
  const rustReads = (s: unknown): boolean => {
    try {
      native.graphModelKeys(JSON.stringify(s), null)
      return true
    } catch (e) {
      expect(fromNative(e).code).toBe('ERR_INVALID_SPEC')
      return false
    }
  }
  const variants: [string, (s: any) => void][] = [
    ['as is', () => {}],
    ['an extra top-level key', (s) => (s.extra = 1)],
    ['a name and a description', (s) => Object.assign(s, { name: 'ocr', description: 'reads text' })],
    ['an unknown op', (s) => (s.nodes[0].op = 'blur')],
    ['an unknown op key', (s) => (s.nodes[1].maxSidee = 3)],
    ['an unknown kind', (s) => (s.nodes[2].kind = 'lambda')],
    ['a node name with a dot', (s) => (s.nodes[2].name = 'det.v2')],
    ['a predicate', (s) => (s.nodes[5].when = { input: 'boxes.boxes', op: '>', value: 0.5, reduce: 'all' })],
    ['a predicate with an unknown comparison', (s) => (s.nodes[5].when = { input: 'boxes.boxes', op: '~', value: 0.5 })],
    ['crop_text without widths', (s) => delete s.nodes[4].minWidth],
    ['a switch', (s) => s.nodes.push({ name: 'pick', kind: 'switch', inputs: { x: 'upright.y' }, variants: [{ model: 'rec' }, { model: 'rec2', quality: 0.5 }], policy: { kind: 'latency-slo', sloMs: 20 } })],
    ['a feedback switch', (s) => s.nodes.push({ name: 'pick', kind: 'switch', inputs: { x: 'upright.y' }, variants: [{ model: 'rec' }, { model: 'rec2' }], policy: { kind: 'feedback', challenger: 'rec2', metric: 'accuracy', mode: 'shadow', split: 0.2, labels: ['a'], minSamples: 10, maxSamples: 50, effect: 0.05, keep: 10 } })],
    ['a feedback switch without a metric', (s) => s.nodes.push({ name: 'pick', kind: 'switch', inputs: { x: 'upright.y' }, variants: [{ model: 'rec' }, { model: 'rec2' }], policy: { kind: 'feedback', challenger: 'rec2' } })],
    ['a feedback switch with an unknown metric', (s) => s.nodes.push({ name: 'pick', kind: 'switch', inputs: { x: 'upright.y' }, variants: [{ model: 'rec' }, { model: 'rec2' }], policy: { kind: 'feedback', challenger: 'rec2', metric: 'auc' } })],
    ['a switch with an unknown policy', (s) => s.nodes.push({ name: 'pick', kind: 'switch', inputs: { x: 'upright.y' }, variants: [{ model: 'rec' }], policy: { kind: 'random' } })],
    ['a lookup op', (s) => s.nodes.push({ name: 'feat', kind: 'op', op: 'lookup', view: 'v', features: ['a'], missing: 'nan', onError: 'default', inputs: ['read.text'] })],
    ['a lookup op without features', (s) => s.nodes.push({ name: 'feat', kind: 'op', op: 'lookup', view: 'v', inputs: ['read.text'] })],
    ['a rank node', (s) => s.nodes.push({ name: 'r', kind: 'rank', model: 'scorer', strategy: 'pairwise', inputs: { candidates: 'boxes.boxes' } })],
    ['a rank node with an unknown strategy', (s) => s.nodes.push({ name: 'r', kind: 'rank', model: 'scorer', strategy: 'bubble', inputs: {} })],
    ['a nested graph', (s) => s.nodes.push({ name: 'sub', kind: 'graph', inputs: { b: 'boxes.boxes' }, graph: { inputs: { b: { type: 'float32' } }, nodes: [{ name: 's', kind: 'op', op: 'sigmoid', inputs: ['b'] }], outputs: { y: 's.y' } } })],
    ['an input of an unknown type', (s) => (s.inputs.image.type = 'bytes')],
    ['a tokenize op', (s) => s.nodes.push({ name: 'tok', kind: 'op', op: 'tokenize', tokenizer: 't.json', maxLength: 32, padding: 'max_length', inputs: ['read.text'] })],
    ['an image op', (s) => s.nodes.push({ name: 'pre', kind: 'op', op: 'image', resize: { width: 224, height: 224 }, normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, layout: 'chw', inputs: ['image'] })],
    ['an image op with an unknown key', (s) => s.nodes.push({ name: 'pre', kind: 'op', op: 'image', rotate: 90, inputs: ['image'] })],
    ['a tokenize op without maxLength', (s) => s.nodes.push({ name: 'tok', kind: 'op', op: 'tokenize', tokenizer: 't.json', inputs: ['read.text'] })],
    ['version 2', (s) => (s.version = 2)],
  ]
  for (const [what, mutate] of variants) {
    it(`${what}`, () => {
      const s = ocr()
      mutate(s)
      const schemaOk = validateGraph(s) as boolean
      expect(rustReads(s), `schema says ${schemaOk ? 'valid' : 'invalid'}: ${JSON.stringify(validateGraph.errors)}`).toBe(schemaOk)
    })
  }
})
