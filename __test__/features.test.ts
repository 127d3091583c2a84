import { describe, expect, it } from 'vitest'

import { Pipeline, fitPlatt, type PipelineColumns, type PipelineSpec } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const pca = readJson('features/pca_reference.json')
const platt = readJson('features/platt_reference.json')
const base = { baseDir: fixture('features') }

/** A pipeline over identity{n}.onnx: its scores are the assembled features. */
async function features(spec: Omit<PipelineSpec, 'version' | 'model' | 'output'>, n: number): Promise<Pipeline> {
  return Pipeline.create({ version: 1, model: `identity${n}.onnx`, output: { tensor: 'y' }, ...spec }, base)
}

describe('PCA', () => {
  for (const name of ['iris', 'penguins'] as const) {
    it(`fits and projects ${name} as scikit-learn does, up to sign, to 1e-6`, async () => {
      const ref = pca[name]
      const fields = ref.features as string[]
      const records = (ref.X as number[][]).map((row) => Object.fromEntries(fields.map((f, j) => [f, row[j]])))
      const p = await features(
        { fields: fields.map((f) => ({ name: f, type: 'number' as const })), preprocess: [{ op: 'pca', fields, components: 3 }], features: [{ input: 'x', names: ['pca0', 'pca1', 'pca2'] }] },
        3,
      )
      const spec = await p.fit(records)
      const st = spec.preprocess![0] as { mean: number[]; matrix: number[][]; explained_variance: number[] }
      st.mean.forEach((m, j) => expect(Math.abs(m - ref.mean_[j])).toBeLessThan(1e-9 * Math.max(1, Math.abs(m))))
      const signs = st.matrix.map((row, k) => {
        const s = Math.sign(row.reduce((a, x, j) => a + x * ref.components_[k][j], 0))
        row.forEach((x, j) => expect(Math.abs(s * x - ref.components_[k][j])).toBeLessThan(1e-6))
        expect(Math.abs(st.explained_variance[k] - ref.explained_variance_[k]) / ref.explained_variance_[k]).toBeLessThan(1e-9)
        return s
      })
      // The projection, through the model (float32), matches sklearn's transform.
      const c = (await p.runBatch(records, { output: 'columns' })) as PipelineColumns
      const want = ref.transform as number[][]
      const scale = Math.max(...want.flat().map(Math.abs))
      want.forEach((row, i) => row.forEach((v, k) => expect(Math.abs(signs[k] * c.scores[i * 3 + k] - v)).toBeLessThan(1e-6 * scale + 2e-6)))
      await p.dispose()
    })
  }
})

describe('hashing, log, bucketize, interactions and aggregations', () => {
  it("hashes categories exactly as scikit-learn's FeatureHasher (n_features=8, alternate_sign)", async () => {
    const p = await features(
      { fields: [{ name: 'island', type: 'category' }], preprocess: [{ op: 'hash', field: 'island', buckets: 8 }], features: [{ input: 'x', names: ['island'] as never }] },
      8,
    ).catch(() => null)
    expect(p).toBeNull() // a category cannot feed a model unhashed
    const q = await features(
      { fields: [{ name: 'island', type: 'category' }], preprocess: [{ op: 'hash', field: 'island', buckets: 8 }], features: [{ input: 'x', names: Array.from({ length: 8 }, (_, i) => `island#${i}`) }] },
      8,
    )
    // From sklearn.feature_extraction.FeatureHasher(n_features=8, input_type='string').transform([[v]]).
    const want: Record<string, number[]> = {
      Biscoe: [0, 0, 0, 0, -1, 0, 0, 0],
      Dream: [0, 0, 0, 0, 0, 0, 0, 1],
      Torgersen: [0, 0, 0, 0, 0, 1, 0, 0],
      hello: [0, 0, 0, 0, 0, 0, 0, 1],
      '': [1, 0, 0, 0, 0, 0, 0, 0],
    }
    const keys = Object.keys(want)
    const c = (await q.runBatch(keys.map((island) => ({ island })), { output: 'columns' })) as PipelineColumns
    keys.forEach((k, i) => expect(Array.from(c.scores.subarray(i * 8, i * 8 + 8))).toEqual(want[k]))
    await q.dispose()
  })

  it('log, bucketize (index and one-hot) and interaction terms', async () => {
    const p = await features(
      {
        fields: [
          { name: 'a', type: 'number' },
          { name: 'b', type: 'number' },
          { name: 'c', type: 'number' },
        ],
        preprocess: [
          { op: 'interaction', fields: ['a', 'b', 'c'] },
          { op: 'bucketize', field: 'c', edges: [0, 10], output: 'one_hot' },
          { op: 'log', fields: ['a'] },
          { op: 'bucketize', field: 'b', edges: [1, 2, 3] },
        ],
        features: [{ input: 'x', names: ['a', 'b', 'a*b', 'a*c', 'b*c', 'c=b0', 'c=b1', 'c=b2'] }],
      },
      8,
    )
    const rows = [
      { a: 0, b: 2.5, c: -3 },
      { a: Math.E - 1, b: 0.5, c: 10 },
      { a: 9, b: 3, c: 5 },
    ]
    const c = (await p.runBatch(rows, { output: 'columns' })) as PipelineColumns
    const got = Array.from(c.scores)
    const expected = rows.flatMap(({ a, b, c: z }) => [Math.log(a + 1), [1, 2, 3].filter((e) => e <= b).length, a * b, a * z, b * z, +(z < 0), +(z >= 0 && z < 10), +(z >= 10)])
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5))
    // log of a value at or below -offset is missing, hence a row error here.
    const e = await rejectsWith(p.run({ a: -1, b: 1, c: 1 }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('a')
    await p.dispose()
  })

  it('aggregations over a list-valued field', async () => {
    const p = await features(
      {
        fields: [{ name: 'clicks', type: 'list' }],
        preprocess: [
          { op: 'aggregate', field: 'clicks', functions: ['mean', 'min', 'max', 'sum', 'count', 'last'] },
          { op: 'impute', fields: ['clicks.mean', 'clicks.min', 'clicks.max', 'clicks.last'], strategy: 'constant', value: -1 },
        ],
        features: [{ input: 'x', names: ['clicks.mean', 'clicks.min', 'clicks.max', 'clicks.sum', 'clicks.count', 'clicks.last', 'clicks.sum', 'clicks.count'] }],
      },
      8,
    )
    // Generated features can be imputed like fields: an empty list gets -1 here.
    const imputed = (await p.runBatch([{ clicks: [] }, { clicks: [4] }], { output: 'columns' })) as PipelineColumns
    expect(Array.from(imputed.scores.subarray(0, 6))).toEqual([-1, -1, -1, 0, 0, -1])
    expect(Array.from(imputed.scores.subarray(8, 14))).toEqual([4, 4, 4, 4, 1, 4])
    await p.dispose()
    const q = await features(
      {
        fields: [{ name: 'clicks', type: 'list' }],
        preprocess: [{ op: 'aggregate', field: 'clicks', functions: ['mean', 'min', 'max', 'sum', 'count', 'last'] }],
        features: [{ input: 'x', names: ['clicks.mean', 'clicks.min', 'clicks.max', 'clicks.sum', 'clicks.count', 'clicks.last', 'clicks.sum', 'clicks.count'], missing: 'nan' }],
      },
      8,
    )
    const lists = [[3, 1, 2], [5], [], null, [2, null, 8], new Float64Array([1.5, -2])]
    const c = (await q.runBatch(lists.map((clicks) => ({ clicks })) as never, { output: 'columns' })) as PipelineColumns
    const row = (i: number) => Array.from(c.scores.subarray(i * 8, i * 8 + 6))
    expect(row(0)).toEqual([2, 1, 3, 6, 3, 2])
    expect(row(1)).toEqual([5, 5, 5, 5, 1, 5])
    expect(row(2).map((x) => (Number.isNaN(x) ? 'NaN' : x))).toEqual(['NaN', 'NaN', 'NaN', 0, 0, 'NaN'])
    expect(row(3).slice(3, 5)).toEqual([0, 0])
    expect(row(4)).toEqual([5, 2, 8, 10, 2, 8])
    expect(row(5)).toEqual([-0.25, -2, 1.5, -0.5, 2, -2])
    const e = await rejectsWith(q.run({ clicks: ['a'] }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('clicks')
    await rejectsWith(q.run({ clicks: 'abc' }), 'ERR_INVALID_INPUT')
    await q.dispose()
  })
})

describe('Platt calibration', () => {
  it('fits the same sigmoid as scikit-learn / LIBSVM, and applies it as a post-processing op', async () => {
    const { a, b } = fitPlatt(platt.data.scores, platt.data.labels)
    expect(Math.abs(a - platt.platt.A_converged)).toBeLessThan(1e-6)
    expect(Math.abs(b - platt.platt.B_converged)).toBeLessThan(1e-6)
    const p = await Pipeline.create(
      { version: 1, model: 'identity3.onnx', fields: [{ name: 's', type: 'number' }], features: [{ input: 'x', names: ['s', 's', 's'] }], output: { tensor: 'y', postprocess: [{ op: 'platt', a, b }] } },
      base,
    )
    const probes = platt.probe.scores as number[]
    const c = (await p.runBatch({ s: probes }, { output: 'columns' })) as PipelineColumns
    probes.forEach((_, i) => expect(Math.abs(c.scores[i * 3] - platt.probe.p_platt[i])).toBeLessThan(1e-6))
    expect(() => fitPlatt([1, 2], [1])).toThrow()
    await p.dispose()
  })
})
