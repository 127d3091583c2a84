// The API fuzz test's pipeline cases (issue #11): the pipelines fuzzed
// (penguins, batched and unfitted; a tabular spec with every tabular field
// type; text; image), records and columns mutated from valid ones for
// pipeline.run and runBatch, and mutated specs for Pipeline.create. Used by
// __test__/fuzz-cases.mjs; plain ESM.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import * as fc from 'fast-check'

import { settleAll } from './fuzz-check.mjs'
import { ABSENT, anyValue, capped, imageBytes, materialize, memo, mostly, oddBigInt, oddNumber, oddString, onTimingArb, optionsArb, rarely, rawImage, signalArb } from './fuzz-values.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const FIXTURES = join(ROOT, '__test__', 'fixtures')
const readSpec = (path) => JSON.parse(readFileSync(path, 'utf8'))

const PENGUINS = readSpec(join(FIXTURES, 'penguins', 'pipeline.json'))
const PENGUINS_UNFITTED = readSpec(join(FIXTURES, 'penguins', 'pipeline.unfitted.json'))
const TEXT = readSpec(join(ROOT, 'examples', 'text', 'pipeline.json'))

/** Every tabular field type and several stages, over identity8.onnx (its scores are its 8 features). */
const TABULAR = {
  version: 1,
  model: 'identity8.onnx',
  fields: [
    { name: 'a', type: 'number' },
    { name: 'b', type: 'integer', required: true },
    { name: 'flag', type: 'boolean' },
    { name: 'c', type: 'category' },
    { name: 'v', type: 'array', size: 2 },
    { name: 'clicks', type: 'list' },
  ],
  preprocess: [
    { op: 'impute', fields: ['a', 'flag'], strategy: 'constant', value: 0 },
    { op: 'log', fields: ['a'] },
    { op: 'one_hot', field: 'c', categories: ['x', 'y'], unknown: 'ignore' },
    { op: 'aggregate', field: 'clicks', functions: ['count'] },
  ],
  features: [{ input: 'x', names: ['a', 'b', 'flag', 'c=x', 'c=y', 'v', 'clicks.count'] }],
  output: { tensor: 'y', postprocess: [{ op: 'top_k', k: 2 }] },
}

const IMAGE = {
  version: 1,
  model: 'channel_stats.onnx',
  fields: [{ name: 'photo', type: 'image' }],
  preprocess: [{ op: 'image', field: 'photo', resize: { width: 8, height: 8 } }],
  features: [{ input: 'pixels', tensor: 'photo.pixels' }],
  output: { tensor: 'stats' },
}

/** The pipelines fuzzed by run and runBatch: spec, base directory, options. */
const PIPELINES = [
  { key: 'penguins', spec: PENGUINS, dir: join(FIXTURES, 'penguins') },
  { key: 'penguinsBatched', spec: PENGUINS, dir: join(FIXTURES, 'penguins'), options: { batching: { maxBatchSize: 16, maxQueue: 64, priorityLevels: 2 } } },
  { key: 'unfitted', spec: PENGUINS_UNFITTED, dir: join(FIXTURES, 'penguins') },
  { key: 'tabular', spec: TABULAR, dir: join(FIXTURES, 'features') },
  { key: 'text', spec: TEXT, dir: join(ROOT, 'examples', 'text') },
  { key: 'image', spec: IMAGE, dir: join(ROOT, 'examples', 'image') },
]

export async function setupPipelines(lib) {
  const out = {}
  for (const p of PIPELINES) out[p.key] = await lib.Pipeline.create(p.spec, { baseDir: p.dir, ...(p.options ?? {}) })
  return out
}

// ------------------------------------------------------------ records

const CATEGORIES = ['Biscoe', 'Dream', 'Torgersen', 'MALE', 'FEMALE', '.', 'x', 'y', '']

/** A good value of a field of `type` (`size` for arrays). */
const goodValue = memo((type, size = 2) => {
  switch (type) {
    case 'number':
      return fc.oneof(fc.double({ min: -1e4, max: 1e4, noNaN: true }), fc.integer({ min: -100, max: 5000 }))
    case 'integer':
      return fc.integer({ min: -1000, max: 1000 })
    case 'boolean':
      return fc.boolean()
    case 'category':
      return fc.oneof(fc.constantFrom(...CATEGORIES), oddString({ huge: 1 }))
    case 'array':
      return fc.oneof(fc.array(fc.double(), { minLength: size, maxLength: size }), fc.float64Array({ minLength: size, maxLength: size }))
    case 'list':
      return fc.oneof(fc.array(fc.oneof(fc.double(), fc.constant(null)), { maxLength: 6 }), fc.float32Array({ maxLength: 6 }))
    case 'text':
      return oddString({ huge: 1 })
    case 'image':
      return fc.oneof({ arbitrary: imageBytes({ photos: 0 }), weight: 4 }, { arbitrary: rawImage(), weight: 1 })
  }
})

const FIELD_TYPES = ['number', 'integer', 'boolean', 'category', 'array', 'list', 'text']

/** A field's value: good, missing, of another type, or anything at all. */
const fieldValue = memo((f) =>
  fc.oneof(
    { arbitrary: goodValue(f.type, f.size), weight: 8 },
    { arbitrary: fc.constantFrom(ABSENT, null, undefined, Number.NaN), weight: 1 },
    { arbitrary: fc.constantFrom(...FIELD_TYPES).chain((t) => goodValue(t)), weight: 1 },
    { arbitrary: anyValue(), weight: 2 },
  ),
)

/** A record for `fields`, mutated, with now and then extra keys ('__proto__' among them, as an own key). */
const recordArb = memo((fields) =>
  fc.oneof(
    {
      arbitrary: fc.tuple(fc.tuple(...fields.map(fieldValue)), rarely(fc.array(fc.tuple(fc.oneof(oddString(), fc.constantFrom('__proto__', 'constructor', 'bogus')), anyValue()), { minLength: 1, maxLength: 2 }), 6), fc.nat(9)).map(([values, extra, proto]) => {
        const r = proto === 0 ? Object.create(null) : {}
        fields.forEach((f, i) => {
          if (values[i] !== ABSENT) r[f.name] = values[i]
        })
        for (const [k, v] of extra ?? []) Object.defineProperty(r, k, { value: v, enumerable: true, writable: true, configurable: true })
        return r
      }),
      weight: 12,
    },
    { arbitrary: anyValue(), weight: 1 },
  ),
)

/** Columns for `fields`: arrays or typed arrays of good or odd values, of matching or mismatched lengths. */
const columnsOf = memo((fields, rows) =>
    fc
      .tuple(
        fc.tuple(
          ...fields.map((f) =>
            fc.oneof(
              { arbitrary: fc.array(fieldValue(f), { minLength: rows, maxLength: rows }), weight: 6 },
              { arbitrary: fc.constant(ABSENT), weight: 2 },
              { arbitrary: fc.float64Array({ minLength: rows * (f.size ?? 1), maxLength: rows * (f.size ?? 1) }), weight: 2 },
              { arbitrary: fc.array(fieldValue(f), { maxLength: 7 }), weight: 1 },
              { arbitrary: fc.oneof(anyValue(), fc.constantFrom(new Int8Array(rows), new BigInt64Array(rows), new Uint8Array(rows).fill(1))), weight: 1 },
            ),
          ),
        ),
        rarely(fc.tuple(oddString(), anyValue())),
      )
      .map(([cols, extra]) => {
        const c = {}
        fields.forEach((f, i) => {
          if (cols[i] !== ABSENT) c[f.name] = cols[i]
        })
        if (extra) Object.defineProperty(c, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true })
        return c
      }),
)
const columnsArb = (fields) => fc.nat(5).chain((rows) => columnsOf(fields, rows))

const pipelineArb = (body) => fc.constantFrom(...PIPELINES).chain((p) => body(p).map((c) => ({ target: p.key, ...c })))

const runOptionsArb = () =>
  optionsArb({
    signal: signalArb(),
    timings: mostly(fc.boolean(), anyValue()),
    priority: mostly(fc.constant(1), fc.oneof(fc.integer({ min: 0, max: 3 }), oddNumber())),
    timeoutMs: mostly(fc.constantFrom(0, 1, 5000), oddNumber()),
    onTiming: onTimingArb(),
  })

const batchOptionsArb = () =>
  optionsArb({
    signal: signalArb(),
    timings: mostly(fc.boolean(), anyValue()),
    output: mostly(fc.constantFrom('objects', 'columns'), fc.oneof(fc.constant('rows'), anyValue())),
    errors: mostly(fc.constantFrom('throw', 'return'), fc.oneof(fc.constant('ignore'), anyValue())),
  })

/** Checks the row errors inside a runBatch result (errors: 'return'). */
function checkRows(check, value, input) {
  if (Array.isArray(value)) for (const r of value) if (r && typeof r === 'object' && 'error' in r) check.rowError('pipeline.runBatch', r.error, input)
  if (value && Array.isArray(value.errors)) for (const e of value.errors) if (e !== null) check.rowError('pipeline.runBatch', e, input)
}

const pipelineRun = {
  name: 'Pipeline.run',
  share: 0.17,
  arbitrary: pipelineArb((p) => fc.record({ calls: fc.array(fc.record({ record: recordArb(p.spec.fields), options: runOptionsArb() }), { minLength: 1, maxLength: 3 }) })),
  async exec(ctx, c, check) {
    const p = ctx.pipelines[c.target]
    const calls = c.calls.map((call) => {
      const options = materialize(call.options)
      return check.async('pipeline.run', () => (options === undefined ? p.run(call.record) : p.run(call.record, options)), { target: c.target, ...call })
    })
    await settleAll(calls)
  },
}

const pipelineRunBatch = {
  name: 'pipeline.runBatch',
  share: 0.14,
  arbitrary: pipelineArb((p) =>
    fc.record({
      calls: fc.array(
        fc.record({
          input: fc.oneof({ arbitrary: fc.array(recordArb(p.spec.fields), { maxLength: 5 }), weight: 6 }, { arbitrary: columnsArb(p.spec.fields), weight: 3 }, { arbitrary: anyValue(), weight: 1 }),
          options: batchOptionsArb(),
        }),
        { minLength: 1, maxLength: 2 },
      ),
    }),
  ),
  async exec(ctx, c, check) {
    const p = ctx.pipelines[c.target]
    const calls = c.calls.map(async (call) => {
      const options = materialize(call.options)
      const input = { target: c.target, ...call }
      const r = await check.async('pipeline.runBatch', () => (options === undefined ? p.runBatch(call.input) : p.runBatch(call.input, options)), input)
      if (r.ok) checkRows(check, r.value, input)
    })
    await settleAll(calls)
  },
}

// ------------------------------------------------------------ Pipeline.create

const PREPROCESS_OPS = ['impute', 'clip', 'standard_scale', 'minmax_scale', 'robust_scale', 'one_hot', 'ordinal', 'log', 'bucketize', 'hash', 'interaction', 'aggregate', 'pca', 'tokenize', 'image']
const POSTPROCESS_OPS = ['softmax', 'sigmoid', 'argmax', 'top_k', 'threshold', 'bucket', 'inverse_scale', 'platt']
const NAMES = ['island', 'sex', 'bill_length_mm', 'body_mass_g', 'a', 'b', 'c', 'v', 'clicks', 'island=Dream', 'nope', '']

/** A plausible stage of a random op, with random parameters (small, so a valid one stays cheap). */
const stageArb = () =>
  fc
    .record({
      op: fc.constantFrom(...PREPROCESS_OPS, ...POSTPROCESS_OPS, 'zscore'),
      field: fc.constantFrom(...NAMES),
      fields: fc.subarray(NAMES),
      strategy: fc.constantFrom('mean', 'median', 'most_frequent', 'constant', 'mode'),
      value: fc.oneof(oddNumber(), oddString()),
      buckets: fc.oneof(fc.integer({ min: 0, max: 16 }), oddNumber()),
      edges: fc.array(oddNumber(), { maxLength: 4 }),
      k: fc.oneof(fc.integer({ min: -1, max: 4 }), oddNumber()),
      components: fc.integer({ min: -1, max: 6 }),
      functions: fc.subarray(['mean', 'min', 'max', 'sum', 'count', 'last', 'median']),
      categories: fc.array(oddString(), { maxLength: 4 }),
      tokenizer: fc.constantFrom('missing.json', '../text/qwen3-tokenizer.json', ''),
      min: oddNumber(),
      a: oddNumber(),
      b: oddNumber(),
    })
    .chain((all) => fc.subarray(Object.keys(all).filter((k) => k !== 'op')).map((keys) => Object.fromEntries([['op', all.op], ...keys.map((k) => [k, all[k]])])))

const specMutation = () =>
  fc.record({
    action: fc.constantFrom('delete', 'rename', 'replace', 'replace', 'op', 'insert', 'duplicate', 'empty'),
    at: fc.nat(),
    name: fc.oneof(oddString(), fc.constantFrom('fields', 'features', 'op', 'names', 'output')),
    value: fc.oneof(anyValue(), oddBigInt(), stageArb()),
    stage: stageArb(),
  })

/**
 * Every [parent, key] of the spec's own objects (`owned`), in pre-order, to
 * depth 12. Values the mutations put in are copies (see adopt), so no case
 * mutates a value shared with other cases; what cannot be copied (functions,
 * too deep) goes in as it is and is never walked.
 */
function slots(v, owned, out = [], depth = 0, seen = new Set()) {
  if (owned.has(v) && depth < 12 && !seen.has(v)) {
    seen.add(v)
    for (const k of Object.keys(v)) {
      out.push([v, k])
      slots(v[k], owned, out, depth + 1, seen)
    }
  }
  return out
}

function mark(v, owned, depth = 0) {
  if (v !== null && typeof v === 'object' && depth < 12 && !owned.has(v)) {
    owned.add(v)
    for (const k of Object.keys(v)) mark(v[k], owned, depth + 1)
  }
}

/** A copy of `v` owned by the spec being mutated, or `v` itself when it cannot be copied. */
function adopt(v, owned) {
  let copy
  try {
    copy = structuredClone(v)
  } catch {
    return v
  }
  mark(copy, owned)
  return copy
}

/** The base spec with the mutations applied (deterministic for a case, so counterexamples replay). */
function mutateSpec(base, mutations) {
  const spec = structuredClone(base)
  const owned = new WeakSet()
  mark(spec, owned)
  for (const m of mutations) {
    const all = slots(spec, owned)
    if (all.length === 0) break
    const [parent, key] = all[m.at % all.length]
    try {
      applyMutation(spec, parent, key, m, owned)
    } catch {
      // A mutation that cannot apply (a non-writable slot) is skipped.
    }
  }
  return spec
}

function applyMutation(spec, parent, key, m, owned) {
  const list = (v) => (Array.isArray(v) && owned.has(v) ? v : [])
  if (m.action === 'delete') Array.isArray(parent) ? parent.splice(Number(key), 1) : delete parent[key]
  else if (m.action === 'rename' && !Array.isArray(parent)) {
    const v = parent[key]
    delete parent[key]
    Object.defineProperty(parent, m.name, { value: v, enumerable: true, writable: true, configurable: true })
  } else if (m.action === 'replace') parent[key] = adopt(m.value, owned)
  else if (m.action === 'op') {
    const stages = [...list(spec.preprocess), ...list(spec.output?.postprocess)].filter((st) => owned.has(st))
    if (stages.length > 0) stages[m.at % stages.length].op = m.stage.op
  } else if (m.action === 'insert') {
    const stages = list(m.at % 2 === 0 ? spec.preprocess : spec.output?.postprocess)
    stages.splice(m.at % (stages.length + 1), 0, adopt(m.stage, owned))
  } else if (m.action === 'duplicate' && Array.isArray(parent)) parent.push(parent[key])
  else if (m.action === 'empty') parent[key] = Array.isArray(parent[key]) ? [] : typeof parent[key] === 'object' ? {} : ''
}

const BASES = [
  { key: 'penguins', spec: PENGUINS, dir: join(FIXTURES, 'penguins') },
  { key: 'unfitted', spec: PENGUINS_UNFITTED, dir: join(FIXTURES, 'penguins') },
  { key: 'tabular', spec: TABULAR, dir: join(FIXTURES, 'features') },
]

/**
 * Pipeline.create options, mutated. Session options stay small when valid
 * (a pool of 256 sessions of 1024 threads each is legal but not a test).
 */
const createOptionsArb = () =>
  optionsArb(
    {
      baseDir: fc.oneof(oddString(), anyValue()),
      session: optionsArb({
        poolSize: fc.oneof(fc.integer({ min: 1, max: 2 }), fc.constantFrom(0, 257, -1, 1.5, 1n)),
        intraOpThreads: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constantFrom(-1, 2000, 1n)),
        graphOptimization: fc.constantFrom('none', 'basic', 'all', 'max', 1n),
        device: fc.constantFrom('cpu', 'cuda:99', 'tpu', '', 1n),
        workerPriority: fc.constantFrom('low', 'normal', 'high'),
        inlineThresholdMicros: fc.oneof(fc.integer({ min: 0, max: 100 }), oddNumber()),
      }),
      batching: optionsArb({ maxBatchSize: fc.oneof(fc.integer({ min: 1, max: 16 }), oddNumber()), maxDelayMicros: fc.constantFrom(0, 100, -1), maxQueue: fc.constantFrom(0, 4, -1), bogus: fc.constant(1) }),
    },
    { absent: 1, odd: 1, object: 10 },
  )

const pipelineCreate = {
  name: 'Pipeline.create',
  share: 0.02,
  arbitrary: fc.oneof(
    {
      arbitrary: fc.record({
        base: fc.nat(BASES.length - 1),
        mutations: fc.oneof({ arbitrary: fc.constant([]), weight: 1 }, { arbitrary: fc.array(specMutation(), { minLength: 1, maxLength: 3 }), weight: 3 }),
        form: fc.constantFrom('object', 'object', 'object', 'object', 'json', 'json', 'truncated', 'flipped'),
        cut: fc.double({ min: 0, max: 1, noNaN: true }),
        options: createOptionsArb(),
      }),
      weight: 12,
    },
    { arbitrary: fc.record({ spec: anyValue(), options: createOptionsArb() }), weight: 1 },
    { arbitrary: fc.record({ load: fc.oneof(oddString(), anyValue(), fc.constantFrom('penguins/pipeline.json', 'penguins/penguins.onnx', 'images/china.jpg', '.')) }), weight: 1 },
  ),
  async exec(ctx, c, check) {
    const { Pipeline } = ctx.lib
    let r
    if ('load' in c) {
      const path = typeof c.load === 'string' && c.load.includes('/') ? join(FIXTURES, c.load) : c.load
      r = await check.async('Pipeline.load', () => Pipeline.load(path), c)
    } else {
      const base = c.base === undefined ? undefined : BASES[c.base]
      let spec = c.spec
      if (base) {
        spec = mutateSpec(base.spec, c.mutations)
        if (c.form !== 'object') {
          let text = ''
          try {
            text = JSON.stringify(spec, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) ?? ''
          } catch {
            // A cyclic or too deep value: the text is empty then.
          }
          if (c.form === 'truncated') text = text.slice(0, Math.floor(text.length * c.cut))
          if (c.form === 'flipped') {
            const at = Math.floor(text.length * c.cut)
            text = text.slice(0, at) + String.fromCharCode((text.charCodeAt(at) || 32) ^ 0x20) + text.slice(at + 1)
          }
          spec = text
        }
      }
      // The base's directory, unless the case gives an odd baseDir (or no options at all).
      let options = c.options !== null && typeof c.options === 'object' && !Array.isArray(c.options) && !('baseDir' in c.options) ? { ...c.options, baseDir: base?.dir ?? FIXTURES } : c.options
      // Valid but huge pools (256 sessions × 1024 threads) would test the machine, not the API.
      if (options?.session !== null && typeof options?.session === 'object') options = { ...options, session: capped(options.session, { poolSize: 2, intraOpThreads: 2, interOpThreads: 2 }) }
      r = await check.async('Pipeline.create', () => (options === undefined ? Pipeline.create(spec) : Pipeline.create(spec, options)), { ...c, spec })
    }
    if (r.ok) await r.value.dispose()
  },
}

export const PIPELINE_PROPERTIES = [pipelineRun, pipelineRunBatch, pipelineCreate]
