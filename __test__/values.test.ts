// Non-tensor outputs (issue #19): scikit-learn's ZipMap (a sequence of maps)
// and sequences of tensors come back from session.run as JS values, equal to
// scikit-learn's predict_proba (zipmap_expected.json, from
// scripts/make_zipmap_fixtures.py); a pipeline reads a ZipMap's
// probabilities as scores; the server refuses them clearly; oxinfer/ort,
// whose values are tensors only, refuses them too.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Graph, Pipeline, serve, Session, Tensor, type PipelineResult } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

interface Expected {
  classes: (number | string)[]
  label: (number | string)[]
  proba: number[][]
}
const expected = readJson<{ input: number[][]; 'zipmap.onnx': Expected; 'zipmap_strings.onnx': Expected }>('zipmap_expected.json')
const rows = expected.input.length
const x = new Tensor('float32', Float32Array.from(expected.input.flat()), [rows, 4])

describe('non-tensor outputs', () => {
  it("a ZipMap with integer classes: an array of Maps with bigint keys, equal to scikit-learn's predict_proba", async () => {
    const s = await Session.create(fixture('zipmap.onnx'))
    expect(s.outputs.map((o) => o.type)).toEqual(['int64', 'sequence'])
    const r = await s.run({ float_input: x })
    const want = expected['zipmap.onnx']
    expect(Array.from(r.output_label.data as BigInt64Array, Number)).toEqual(want.label)
    const maps = r.output_probability as unknown as Map<bigint, number>[]
    expect(maps).toHaveLength(rows)
    maps.forEach((m, i) => {
      expect(m).toBeInstanceOf(Map)
      expect([...m.keys()]).toEqual(want.classes.map((c) => BigInt(c)))
      want.classes.forEach((c, j) => expect(Math.abs(m.get(BigInt(c))! - want.proba[i][j])).toBeLessThan(1e-5))
    })
    // Only the tensor output, when asked for by name.
    expect(Object.keys(await s.run({ float_input: x }, { outputs: ['output_label'] }))).toEqual(['output_label'])
    await s.dispose()
  })

  it('a ZipMap with string classes: plain objects { label: probability }, also from a batched session', async () => {
    const want = expected['zipmap_strings.onnx']
    for (const options of [{}, { batching: { maxBatchSize: 8 } }]) {
      const s = await Session.create(fixture('zipmap_strings.onnx'), options)
      // One row per call: a batched session runs non-tensor outputs request by request.
      const results = await Promise.all(expected.input.map((row) => s.run({ float_input: new Tensor('float32', Float32Array.from(row), [1, 4]) })))
      results.forEach((r, i) => {
        expect(r.output_label.data).toEqual([want.label[i]])
        const [m] = r.output_probability as unknown as Record<string, number>[]
        expect(Object.keys(m)).toEqual(want.classes)
        want.classes.forEach((c, j) => expect(Math.abs(m[c as string] - want.proba[i][j])).toBeLessThan(1e-5))
      })
      await s.dispose()
    }
    // An optional cannot feed a graph node: graphs pass tensors.
    const spec = { version: 1, inputs: { x: { type: 'float32', shape: [-1] } }, nodes: [{ name: 'o', kind: 'model', model: fixture('optional.onnx'), inputs: { x: 'x' } }, { name: 'p', kind: 'model', model: fixture('optional.onnx'), inputs: { x: 'o.some' } }], outputs: { y: 'p.y' } }
    const e = await rejectsWith(Graph.create(spec as never), 'ERR_INVALID_SPEC')
    expect(e.message).toMatch(/edge o\.some -> p\.x carries a value of type optional; graphs pass tensors only/)
  })

  it('a sequence of tensors: an array of Tensor of its type, exact integers, NaN and infinities kept', async () => {
    const s = await Session.create(fixture('sequence.onnx'))
    const n = new Tensor('int32', Int32Array.from([16777217, -2147483647, 7, 0, 1, 2]), [2, 3])
    const r = await s.run({ x: new Tensor('float32', Float32Array.from([1, 5, 2, 7, 0, 3]), [2, 3]), n })
    const seq = r.rows as unknown as Tensor[]
    expect(seq.map((t) => [t.type, t.dims, Array.from(t.data as Float32Array)])).toEqual([
      ['float32', [3], [1, 5, 2]],
      ['float32', [3], [7, 0, 3]],
    ])
    const ids = r.ids as unknown as Tensor[]
    expect(ids.map((t) => [t.type, Array.from(t.data as BigInt64Array)])).toEqual([
      ['int64', [1n]],
      ['int64', [0n]],
    ])
    const whole = r.whole as unknown as Tensor[]
    expect(whole[0].data).toBeInstanceOf(Int32Array)
    expect(Array.from(whole[0].data as Int32Array)).toEqual([16777217, -2147483647, 7])
    const odd = await s.run({ x: new Tensor('float32', Float32Array.from([Infinity, -Infinity, NaN, 0, -0, 1e-45]), [2, 3]), n })
    const [first, second] = odd.rows as unknown as Tensor[]
    expect(Array.from(first.data as Float32Array)).toEqual([Infinity, -Infinity, NaN])
    expect(Array.from(second.data as Float32Array)).toEqual([0, -0, Math.fround(1e-45)])
    await s.dispose()
  })

  it("a pipeline reads a ZipMap's probabilities as scores, in its labels' order", async () => {
    const fields = ['f0', 'f1', 'f2', 'f3'].map((name) => ({ name, type: 'number' as const }))
    const records = expected.input.map((r) => Object.fromEntries(r.map((v, i) => [`f${i}`, v])))
    // By name (string classes, any order); by position otherwise, also when labels look like other classes ('1' for class 0).
    for (const [model, labels] of [
      ['zipmap_strings.onnx', ['virginica', 'setosa', 'versicolor']],
      ['zipmap.onnx', ['zero', 'one', 'two']],
      ['zipmap.onnx', ['1', '2', '3']],
    ] as const) {
      const want = expected[model]
      const p = await Pipeline.create({ version: 1, model, fields, features: [{ input: 'float_input', names: ['f0', 'f1', 'f2', 'f3'] }], output: { tensor: 'output_probability', labels: [...labels], postprocess: [{ op: 'argmax' }] } }, { baseDir: fixture('') })
      const got = (await p.runBatch(records)) as PipelineResult[]
      got.forEach((r, i) => {
        // Label j of the spec is class j (integer classes) or the class of that name.
        const classOf = (l: string, j: number) => (model === 'zipmap.onnx' ? j : want.classes.indexOf(l))
        labels.forEach((l, j) => expect(Math.abs((r.scores as unknown as Float32Array)[j] - want.proba[i][classOf(l, j)])).toBeLessThan(1e-5))
        const best = want.proba[i].indexOf(Math.max(...want.proba[i]))
        expect(r.label).toBe(model === 'zipmap.onnx' ? labels[best] : want.classes[best])
      })
      await p.dispose()
    }
    // Labels are required (the classes' order), and must be as many as the classes.
    const spec = (labels?: string[]) => ({ version: 1 as const, model: 'zipmap.onnx', fields, features: [{ input: 'float_input', names: ['f0', 'f1', 'f2', 'f3'] }], output: { tensor: 'output_probability', ...(labels ? { labels } : {}) } })
    const e = await rejectsWith(Pipeline.create(spec(), { baseDir: fixture('') }), 'ERR_INVALID_SPEC')
    expect(e.message).toMatch(/is a ZipMap: give output\.labels/)
    const two = await Pipeline.create(spec(['a', 'b']), { baseDir: fixture('') })
    expect((await rejectsWith(two.runBatch(records), 'ERR_INVALID_SPEC')).message).toMatch(/has 3 classes \(0, 1, 2\), the spec 2 labels/)
    await two.dispose()
  })

  it('a batched session runs such requests alone, once each', async () => {
    const s = await Session.create(fixture('zipmap_strings.onnx'), { batching: { maxBatchSize: 16 } })
    await Promise.all(expected.input.map((row) => s.run({ float_input: new Tensor('float32', Float32Array.from(row), [1, 4]) })))
    const st = s.stats()
    expect(st.success).toBe(rows)
    expect(st.executions).toBe(rows)
    expect(st.meanBatchRows).toBe(1)
    await s.dispose()
  })

  it('a graph returns a sequence, also under two output names', async () => {
    const g = await Graph.create({ version: 1, inputs: { x: { type: 'float32', shape: [-1, 3] }, n: { type: 'int32', shape: [-1, 3] } }, nodes: [{ name: 's', kind: 'model', model: 'seq', inputs: { x: 'x', n: 'n' } }], outputs: { a: 's.rows', b: 's.rows' } }, { models: { seq: fixture('sequence.onnx') } })
    const r = await g.run({ x: new Tensor('float32', Float32Array.from([1, 5, 2, 7, 0, 3]), [2, 3]), n: new Tensor('int32', new Int32Array(6), [2, 3]) })
    for (const name of ['a', 'b']) expect((r[name] as unknown as Tensor[]).map((t) => Array.from(t.data as Float32Array))).toEqual([[1, 5, 2], [7, 0, 3]])
    await g.dispose()
  })

  it('optional outputs come back as their value, or null when empty; batched sessions run them alone', async () => {
    // ort cannot wrap an empty optional (it panics on its type): such runs go through ONNX Runtime's C API.
    for (const options of [{}, { batching: { maxBatchSize: 8 } }]) {
      const s = await Session.create(fixture('optional.onnx'), options)
      expect(s.outputs.map((o) => o.type)).toEqual(['float32', 'optional', 'optional'])
      const x = new Tensor('float32', Float32Array.from([1, 2]), [2])
      const all = await s.run<{ y: Tensor; some: Tensor | null; none: Tensor | null }>({ x })
      expect(Array.from(all.y.data as Float32Array)).toEqual([1, 2])
      expect(all.some).toBeInstanceOf(Tensor)
      expect(all.some!.type).toBe('float32')
      expect(all.some!.dims).toEqual([2])
      expect(Array.from(all.some!.data as Float32Array)).toEqual([1, 2])
      expect(all.none).toBeNull()
      expect(Object.keys(await s.run({ x }, { outputs: ['none'] }))).toEqual(['none'])
      // Concurrent requests each get their own value (no rows to split, so no merging).
      const many = await Promise.all(Array.from({ length: 16 }, (_, i) => s.run<{ some: Tensor | null; none: Tensor | null }>({ x: new Tensor('float32', Float32Array.from([i, -i, i / 2]), [3]) }, { outputs: ['some', 'none'] })))
      many.forEach((r, i) => {
        expect(Array.from(r.some!.data as Float32Array)).toEqual([i, -i, i / 2])
        expect(r.none).toBeNull()
      })
      // Bad input on this path is refused as on the ordinary one, and the session goes on.
      await rejectsWith(s.run({ x: new Tensor('float64', Float64Array.from([1]), [1]) }), 'ERR_INVALID_INPUT')
      expect(Array.from(((await s.run({ x }, { outputs: ['some'] })).some as Tensor).data as Float32Array)).toEqual([1, 2])
      await s.dispose()
    }
  })

  it('the server refuses a non-tensor output with a 400 that says what to do, and serves the tensor outputs', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-values-'))
    mkdirSync(join(repo, 'zip', '1'), { recursive: true })
    cpSync(fixture('zipmap_strings.onnx'), join(repo, 'zip', '1', 'model.onnx'))
    mkdirSync(join(repo, 'opt', '1'), { recursive: true })
    cpSync(fixture('optional.onnx'), join(repo, 'opt', '1', 'model.onnx'))
    mkdirSync(join(repo, 'g', '1'), { recursive: true })
    cpSync(fixture('optional.onnx'), join(repo, 'g', '1', 'opt.onnx'))
    const graph = { version: 1, inputs: { x: { type: 'float32', shape: [-1] } }, nodes: [{ name: 'o', kind: 'model', model: 'opt.onnx', inputs: { x: 'x' } }], outputs: { some: 'o.some', none: 'o.none', y: 'o.y' } }
    writeFileSync(join(repo, 'g', '1', 'graph.json'), JSON.stringify(graph))
    const server = await serve({ repository: repo, port: 0 })
    try {
      const body = (outputs?: { name: string }[]) => JSON.stringify({ inputs: [{ name: 'float_input', datatype: 'FP32', shape: [1, 4], data: expected.input[0] }], ...(outputs ? { outputs } : {}) })
      const all = await fetch(`${server.address!.url}/v2/models/zip/infer`, { method: 'POST', body: body() })
      expect(all.status).toBe(400)
      expect((await all.json()).error).toMatch(/output 'output_probability' is not a tensor but a sequence, which the v2 protocol cannot carry/)
      const some = await fetch(`${server.address!.url}/v2/models/zip/infer`, { method: 'POST', body: body([{ name: 'output_label' }]) })
      expect(some.status).toBe(200)
      expect((await some.json()).outputs[0]).toMatchObject({ name: 'output_label', datatype: 'BYTES', data: [expected['zipmap_strings.onnx'].label[0]] })
      // Optional outputs: refused by name before running; the model's tensor outputs are served.
      const opt = (outputs?: { name: string }[]) =>
        fetch(`${server.address!.url}/v2/models/opt/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }], ...(outputs ? { outputs } : {}) }) })
      const refused = await opt()
      expect(refused.status).toBe(400)
      expect((await refused.json()).error).toMatch(/output 'some' is not a tensor but an optional, which the v2 protocol cannot carry/)
      const y = await opt([{ name: 'y' }])
      expect(y.status).toBe(200)
      expect((await y.json()).outputs[0]).toMatchObject({ name: 'y', datatype: 'FP32', shape: [2], data: [1, 2] })
      // A graph's optional output is refused by its declared type, filled or not, before the graph runs.
      for (const name of ['some', 'none']) {
        const r = await fetch(`${server.address!.url}/v2/models/g/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }], outputs: [{ name }] }) })
        expect(r.status, name).toBe(400)
        expect((await r.json()).error).toMatch(new RegExp(`output '${name}' is not a tensor but an optional, which the v2 protocol cannot carry: request the model's tensor outputs by name$`))
      }
      const gy = await fetch(`${server.address!.url}/v2/models/g/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }], outputs: [{ name: 'y' }] }) })
      expect(gy.status).toBe(200)
      expect((await gy.json()).outputs[0]).toMatchObject({ name: 'y', datatype: 'FP32', data: [1, 2] })
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })
})
