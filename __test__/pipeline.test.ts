import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { OxinferError, Pipeline, type PipelineColumns, type PipelineResult, type PipelineRowError, type PipelineSpec } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const dir = fixture('penguins')
const specPath = join(dir, 'pipeline.json')
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
const ref = readJson('penguins/reference.json')
const fittedSpec = (): PipelineSpec => JSON.parse(readFileSync(specPath, 'utf8'))

function expectProba(results: (PipelineResult | PipelineRowError)[]): void {
  expect(results).toHaveLength(records.length)
  results.forEach((r, i) => {
    expect('error' in r, `row ${i}`).toBe(false)
    const res = r as PipelineResult
    const want = ref.predict_proba[i] as number[]
    want.forEach((p, j) => expect(Math.abs(res.scores[j] - p), `row ${i} class ${j}`).toBeLessThan(1e-5))
    expect(res.label).toBe(ref.predict[i])
  })
}

describe('penguins: a scikit-learn pipeline reproduced end to end', () => {
  let p: Pipeline
  beforeAll(async () => {
    p = await Pipeline.load(specPath)
  })
  afterAll(() => p.dispose())

  it('matches predict_proba on every row, as objects in a batch', async () => {
    expectProba(await p.runBatch(records))
  })

  it('matches one record at a time', async () => {
    const out: PipelineResult[] = []
    for (const r of records) out.push(await p.run(r))
    expectProba(out)
  })

  it('matches as columns in and out', async () => {
    const cols: Record<string, unknown[]> = {}
    for (const f of ['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']) cols[f] = records.map((r) => r[f])
    cols.bill_length_mm = Float64Array.from(records, (r) => (r.bill_length_mm ?? Number.NaN) as number) as never
    const c = (await p.runBatch(cols, { output: 'columns' })) as PipelineColumns
    expect(c.rows).toBe(records.length)
    expect(c.k).toBe(3)
    for (let i = 0; i < records.length; i++) {
      for (let j = 0; j < 3; j++) expect(Math.abs(c.scores[i * 3 + j] - ref.predict_proba[i][j])).toBeLessThan(1e-5)
      expect(c.label![i]).toBe(ref.predict[i])
      expect(c.errors[i]).toBeNull()
    }
    expect(c.score).toBeInstanceOf(Float32Array)
  })

  it('reports native per-stage timings on request', async () => {
    const r = await p.run(records[0], { timings: true })
    for (const k of ['preprocessMicros', 'assembleMicros', 'inferenceMicros', 'postprocessMicros'] as const) {
      expect(r.timings![k]).toBeGreaterThanOrEqual(0)
    }
    expect(r.timings!.inferenceMicros).toBeGreaterThan(0)
    const b = await p.runBatch(records, { timings: true })
    expect(b.timings!.preprocessMicros).toBeGreaterThan(0)
    expect((await p.run(records[0])).timings).toBeUndefined()
  })

  it('gives the good rows of a batch with bad rows first, between and last their own results', async () => {
    const bad = { ...records[0], bill_length_mm: 'long' }
    const mixed: Record<string, unknown>[] = [bad]
    records.forEach((r, i) => mixed.push(r, ...(i % 7 === 3 ? [bad] : [])))
    mixed.push(bad)
    const out = await p.runBatch(mixed, { errors: 'return' })
    expect(out).toHaveLength(mixed.length)
    const good = out.filter((r, i) => {
      if (mixed[i] !== bad) return true
      expect('error' in r && r.error.code, `row ${i}`).toBe('ERR_INVALID_INPUT')
      return false
    })
    expectProba(good)
  })

  it('runs many concurrent requests correctly', async () => {
    const results = await Promise.all(records.map((r) => p.run(r)))
    expectProba(results)
  })
})

describe('fit', () => {
  it('learns the statistics scikit-learn learned, to 1e-9 relative, and then predicts the same', async () => {
    const p = await Pipeline.load(join(dir, 'pipeline.unfitted.json'))
    const e = await rejectsWith(p.run(records[0]), 'ERR_INVALID_SPEC')
    expect(e.message).toMatch(/fit/)
    const train = (ref.train_indices as number[]).map((i) => records[i])
    const spec = await p.fit(train)
    const close = (a: number, b: number) => expect(Math.abs(a - b) / Math.abs(b)).toBeLessThan(1e-9)
    const [imp, sc, impCat, ohIsland, ohSex] = spec.preprocess! as any[]
    for (const [f, v] of Object.entries(ref.fitted.impute_mean as Record<string, number>)) close(imp.values[f], v)
    for (const [f, v] of Object.entries(ref.fitted.scaler_mean as Record<string, number>)) close(sc.mean[f], v)
    for (const [f, v] of Object.entries(ref.fitted.scaler_scale as Record<string, number>)) close(sc.scale[f], v)
    expect(impCat.values).toEqual(ref.fitted.impute_most_frequent)
    expect(ohIsland.categories).toEqual(ref.fitted.categories.island)
    expect(ohSex.categories).toEqual(ref.fitted.categories.sex)
    expect(p.spec).toEqual(spec)
    expectProba(await p.runBatch(records))
    await p.dispose()
  })

  it('saves a spec that loads again, with the model path rewritten', async () => {
    const p = await Pipeline.load(join(dir, 'pipeline.unfitted.json'))
    await p.fit(records)
    const out = join(mkdtempSync(join(tmpdir(), 'oxinfer-spec-')), 'fitted.json')
    await p.save(out)
    const saved = JSON.parse(readFileSync(out, 'utf8'))
    expect(saved.model).toMatch(/penguins\.onnx$/)
    const q = await Pipeline.load(out)
    expect(q.spec.preprocess).toEqual(p.spec.preprocess)
    const [a, b] = await Promise.all([p.run(records[5]), q.run(records[5])])
    expect(Array.from(a.scores)).toEqual(Array.from(b.scores))
    await Promise.all([p.dispose(), q.dispose()])
  })
})

describe('bad records', () => {
  let strict: Pipeline
  beforeAll(async () => {
    const spec = fittedSpec()
    spec.fields[0].required = true // island
    for (const s of spec.preprocess!) if (s.op === 'one_hot') s.unknown = 'error'
    strict = await Pipeline.create(spec, { baseDir: dir })
  })
  afterAll(() => strict.dispose())

  const good = records[0]
  const cases: [string, Record<string, unknown>, string][] = [
    ['a string in a numeric field', { ...good, bill_length_mm: '39.1' }, 'bill_length_mm'],
    ['an object in a numeric field', { ...good, body_mass_g: { g: 1 } }, 'body_mass_g'],
    ['a number in a category field', { ...good, sex: 1 }, 'sex'],
    ['a missing required field', { ...good, island: undefined }, 'island'],
    ['a null required field', { ...good, island: null }, 'island'],
    ['an unseen category under the error policy', { ...good, island: 'Atlantis' }, 'island'],
  ]
  for (const [what, rec, field] of cases) {
    it(`${what}: ERR_INVALID_INPUT with row and field`, async () => {
      const e = await rejectsWith(strict.run(rec), 'ERR_INVALID_INPUT')
      expect([e.row, e.field]).toEqual([0, field])
      const b = await rejectsWith(strict.runBatch([good, good, rec]), 'ERR_INVALID_INPUT')
      expect([b.row, b.field]).toEqual([2, field])
    })
  }

  it('a batch with bad rows returns per-row errors beside the good rows, by option', async () => {
    const batch = [good, { ...good, island: 'Atlantis' }, records[1], { ...good, bill_depth_mm: 'deep' }, records[2]]
    const out = await strict.runBatch(batch, { errors: 'return' })
    expect(out).toHaveLength(5)
    expect('error' in out[1] && out[1].error).toBeInstanceOf(OxinferError)
    expect((out[1] as PipelineRowError).error.field).toBe('island')
    expect((out[1] as PipelineRowError).error.row).toBe(1)
    expect((out[3] as PipelineRowError).error.field).toBe('bill_depth_mm')
    for (const i of [0, 2, 4]) expect((out[i] as PipelineResult).label).toBe(ref.predict[[0, 0, 1, 0, 2][i]])
    const cols = (await strict.runBatch(batch, { errors: 'return', output: 'columns' })) as PipelineColumns
    expect(cols.errors.map((e) => e?.field ?? null)).toEqual([null, 'island', null, 'bill_depth_mm', null])
    expect(cols.label).toEqual([ref.predict[0], null, ref.predict[1], null, ref.predict[2]])
    expect(Number.isNaN(cols.scores[3])).toBe(true)
  })

  it('an unimputed missing value is a row error', async () => {
    const spec = fittedSpec()
    spec.preprocess = spec.preprocess!.filter((s) => !(s.op === 'impute' && s.strategy === 'mean'))
    const p = await Pipeline.create(spec, { baseDir: dir })
    const e = await rejectsWith(p.run({ ...good, bill_depth_mm: null }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('bill_depth_mm')
    expect(e.message).toMatch(/missing/)
    await p.dispose()
  })

  it('non-object records and malformed batches', async () => {
    const e = await rejectsWith(strict.runBatch([good, 42 as never]), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(1)
    await rejectsWith(strict.run(null as never), 'ERR_INVALID_INPUT')
    await rejectsWith(strict.runBatch('x' as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(strict.runBatch([good], { output: 'rows' } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(strict.runBatch([good], { error: 'return' } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(strict.runBatch({ island: ['Dream'], bogus: [1] }), 'ERR_INVALID_INPUT')
    await rejectsWith(strict.runBatch({ island: ['Dream'], sex: ['MALE', 'FEMALE'] }), 'ERR_INVALID_INPUT')
    const empty = await strict.runBatch([])
    expect(empty).toEqual([])
  })
})

describe('arrays and post-processing on a generated model', () => {
  // tiny_mlp: x [batch, 16] -> y [batch, 2] logits.
  const base = (post: PipelineSpec['output']['postprocess'], extra: Partial<PipelineSpec> = {}): PipelineSpec => ({
    version: 1,
    model: 'tiny_mlp.onnx',
    fields: [{ name: 'emb', type: 'array', size: 16 }],
    features: [{ input: 'x', names: ['emb'] }],
    output: { tensor: 'y', labels: ['neg', 'pos'], postprocess: post },
    ...extra,
  })
  const rows = Array.from({ length: 9 }, (_, i) => ({ emb: Array.from({ length: 16 }, (_, j) => Math.sin(i * 16 + j) * 2) }))
  const mk = (spec: PipelineSpec) => Pipeline.create(spec, { baseDir: fixture('.') })

  it('softmax, top_k, threshold and bucket agree with the raw model', async () => {
    const raw = await mk(base([]))
    const logits = (await raw.runBatch(rows)).map((r) => Array.from((r as PipelineResult).scores))
    const p = await mk(
      base([{ op: 'softmax' }, { op: 'top_k', k: 2 }, { op: 'threshold', min: 0.6 }, { op: 'bucket', edges: [0.6, 0.9], names: ['low', 'mid', 'high'] }]),
    )
    const out = (await p.runBatch(rows)) as PipelineResult[]
    out.forEach((r, i) => {
      const [a, b] = logits[i]
      const m = Math.max(a, b)
      const ea = Math.exp(a - m)
      const eb = Math.exp(b - m)
      const probs = [ea / (ea + eb), eb / (ea + eb)]
      probs.forEach((q, j) => expect(r.scores[j]).toBeCloseTo(q, 6))
      const best = probs[1] > probs[0] ? 1 : 0
      expect(r.top!.map((t) => t.label)).toEqual(best ? ['pos', 'neg'] : ['neg', 'pos'])
      expect(r.label).toBe(probs[best] >= 0.6 ? ['neg', 'pos'][best] : null)
      expect(r.labels).toEqual(['neg', 'pos'].filter((_, j) => probs[j] >= 0.6))
      expect(r.bucket).toBe(probs[best] < 0.6 ? 'low' : probs[best] < 0.9 ? 'mid' : 'high')
    })
    const sig = await mk(base([{ op: 'sigmoid' }, { op: 'argmax' }]))
    ;((await sig.runBatch(rows)) as PipelineResult[]).forEach((r, i) => expect(r.scores[0]).toBeCloseTo(1 / (1 + Math.exp(-logits[i][0])), 6))
    await Promise.all([raw.dispose(), p.dispose(), sig.dispose()])
  })

  it('element features, clip, min-max, robust scaling and ordinal encoding compute as specified', async () => {
    const spec: PipelineSpec = {
      version: 1,
      model: 'tiny_mlp.onnx',
      fields: [
        { name: 'a', type: 'number' },
        { name: 'b', type: 'integer' },
        { name: 'c', type: 'category' },
        { name: 'flag', type: 'boolean' },
        { name: 'v', type: 'array', size: 12 },
      ],
      preprocess: [
        { op: 'impute', fields: ['a'], strategy: 'median' },
        { op: 'impute', fields: ['b'], strategy: 'constant', value: 7 },
        { op: 'clip', fields: ['a'], min: -1, max: 3 },
        { op: 'minmax_scale', fields: ['b'], range: [-1, 1] },
        { op: 'robust_scale', fields: ['v'] },
        { op: 'ordinal', field: 'c', unknown: 'ignore', unknown_value: -5 },
      ],
      features: [{ input: 'x', names: ['a', 'b', 'c', 'flag', 'v'] }],
      output: { tensor: 'y' },
    }
    const train = [
      { a: 1, b: 2, c: 'x', flag: true, v: Array.from({ length: 12 }, (_, j) => j) },
      { a: 5, b: 4, c: 'y', flag: false, v: Array.from({ length: 12 }, (_, j) => 2 * j) },
      { a: null, b: 10, c: 'x', flag: true, v: Array.from({ length: 12 }, (_, j) => -j) },
      { a: 2, b: null, c: 'z', flag: false, v: Array.from({ length: 12 }, () => 3) },
    ]
    const p = await mk(spec)
    const fitted = await p.fit(train)
    const [med, , , mm, rob, ord] = fitted.preprocess! as any[]
    expect(med.values.a).toBe(2) // median of 1, 5, 2
    expect(mm.data_min.b).toBe(2)
    expect(mm.data_max.b).toBe(10) // 7 imputed for the missing b is inside [2, 10]
    // All 48 v values: median and quartiles (numpy's linear percentile).
    const all = train.flatMap((t) => t.v).sort((x, y) => x - y)
    const pct = (q: number) => {
      const pos = (q / 100) * (all.length - 1)
      const lo = Math.floor(pos)
      return all[lo] + (all[Math.ceil(pos)] - all[lo]) * (pos - lo)
    }
    expect(rob.center.v).toBeCloseTo(pct(50), 12)
    expect(rob.scale.v).toBeCloseTo(pct(75) - pct(25), 12)
    expect(ord.categories).toEqual(['x', 'y', 'z'])
    const out = (await p.runBatch([{ a: 10, b: 6, c: 'q', flag: true, v: new Array(12).fill(1) }])) as PipelineResult[]
    expect(out[0].scores).toHaveLength(2)
    // Oversized and undersized arrays are input errors naming the field.
    for (const v of [new Array(13).fill(0), new Array(3).fill(0), 'abc']) {
      const e = await rejectsWith(p.run({ a: 1, b: 1, c: 'x', flag: true, v }), 'ERR_INVALID_INPUT')
      expect(e.field).toBe('v')
    }
    await rejectsWith(p.run({ a: 1, b: 1.5, c: 'x', flag: true, v: new Array(12).fill(0) }), 'ERR_INVALID_INPUT')
    await rejectsWith(p.run({ a: 1, b: 1, c: 'x', flag: 'yes', v: new Array(12).fill(0) }), 'ERR_INVALID_INPUT')
    await p.dispose()
  })
})

describe('spec validation', () => {
  const bad: [string, (s: any) => void, string][] = [
    ['an unknown op', (s) => (s.preprocess[1].op = 'zscore'), 'preprocess[1]'],
    ['an unknown field in a stage', (s) => (s.preprocess[0].fields = ['beak']), 'preprocess[0]'],
    ['an unknown field type', (s) => (s.fields[2].type = 'float'), 'fields[2]'],
    ['features that do not fit the model input', (s) => s.features[0].names.pop(), 'features[0]'],
    ['an unknown feature', (s) => (s.features[0].names[0] = 'nope'), 'features[0]'],
    ['an unknown model input', (s) => (s.features[0].input = 'nope'), 'features[0]'],
    ['an unknown output tensor', (s) => (s.output.tensor = 'nope'), 'output'],
    ['labels that do not fit the scores', (s) => s.output.labels.pop(), 'output'],
    ['a non-float output', (s) => (s.output.tensor = 'label'), 'output'],
    ['an unknown post-processing op', (s) => s.output.postprocess.push({ op: 'calibrate' }), 'output.postprocess[1]'],
    ['bucket names that do not fit the edges', (s) => s.output.postprocess.push({ op: 'bucket', edges: [0.5], names: ['a'] }), 'output.postprocess[1]'],
    ['an unknown key', (s) => (s.preprocess[0].fill = 3), 'preprocess[0]'],
    ['scaling a category field', (s) => s.preprocess[1].fields.push('island'), 'preprocess[1]'],
    ['a category fed to the model unencoded', (s) => (s.features[0].names[0] = 'sex'), 'features[0]'],
  ]
  for (const [what, mutate, stage] of bad) {
    it(`${what}: ERR_INVALID_SPEC naming ${stage}`, async () => {
      const s = fittedSpec()
      mutate(s)
      const e = await rejectsWith(Pipeline.create(s, { baseDir: dir }), 'ERR_INVALID_SPEC')
      expect(e.stage ?? '', e.message).toContain(stage)
    })
  }

  it('a wrong version, a missing model, bad JSON and an unreadable file', async () => {
    await rejectsWith(Pipeline.create({ ...fittedSpec(), version: 2 as 1 }, { baseDir: dir }), 'ERR_INVALID_SPEC')
    await rejectsWith(Pipeline.create('{ not json', { baseDir: dir }), 'ERR_INVALID_SPEC')
    // A value JSON cannot hold is a spec error too, not a bare TypeError.
    expect((await rejectsWith(Pipeline.create({ ...fittedSpec(), session: { poolSize: 1n } } as never, { baseDir: dir }), 'ERR_INVALID_SPEC')).message).toMatch(/BigInt/)
    expect((await rejectsWith(Pipeline.load(join(dir, 'missing.json')), 'ERR_FILE')).path).toBe(join(dir, 'missing.json'))
    await rejectsWith(Pipeline.create({ ...fittedSpec(), model: 'missing.onnx' }, { baseDir: dir }), 'ERR_FILE')
    await rejectsWith(Pipeline.create(fittedSpec(), { basedir: dir } as never), 'ERR_INVALID_ARGUMENT')
  })
})
