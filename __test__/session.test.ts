import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Session, Tensor, versions } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

describe('Session basics', () => {
  let mlp: Session
  beforeAll(async () => {
    mlp = await Session.create(fixture('tiny_mlp.onnx'))
  })
  afterAll(() => mlp.dispose())

  it('reports versions, loading the library', () => {
    const v = versions()
    expect(v.onnxruntime).toMatch(/^1\.\d+\.\d+/)
    expect(v.oxinfer).toBe(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version)
    expect(v.napi).toBe(String(process.versions.napi))
  })

  it('describes inputs, outputs and metadata', () => {
    expect(mlp.inputs).toEqual([{ name: 'x', type: 'float32', dims: ['batch', 16] }])
    expect(mlp.outputs).toEqual([{ name: 'y', type: 'float32', dims: ['batch', 2] }])
    expect(mlp.metadata.producer).toBe('oxinfer-fixtures')
    expect(mlp.metadata.graphName).toBe('tiny_mlp')
  })

  it('matches the onnxruntime reference outputs to 1e-5', async () => {
    const { tiny_mlp: c } = readJson('expected.json')
    const x = new Tensor('float32', Float32Array.from(c.input.data as number[]), c.input.dims)
    const { y } = await mlp.run({ x })
    expect(y).toBeInstanceOf(Tensor)
    expect(y.type).toBe('float32')
    expect(y.dims).toEqual(c.output.dims)
    expect(y.size).toBe(8)
    ;(c.output.data as number[]).forEach((w, i) => expect(Math.abs((y.data as Float32Array)[i] - w)).toBeLessThan(1e-5))
  })

  it('gives the same answer inline and off-thread', async () => {
    const { tiny_mlp: c } = readJson('expected.json')
    const x = new Tensor(Float32Array.from(c.input.data as number[]), c.input.dims)
    const offThread = await Session.create(fixture('tiny_mlp.onnx'), { inlineThresholdMicros: 0 })
    const a = await offThread.run({ x })
    const runs = []
    for (let i = 0; i < 20; i++) runs.push(await mlp.run({ x }))
    for (const r of runs) expect(Array.from(r.y.data as Float32Array)).toEqual(Array.from(a.y.data as Float32Array))
    await offThread.dispose()
  })

  it('loads from bytes as from a path', async () => {
    const s = await Session.create(new Uint8Array(readFileSync(fixture('tiny_mlp.onnx'))))
    expect(s.inputs).toEqual(mlp.inputs)
    const x = new Tensor('float32', new Float32Array(16).fill(1), [1, 16])
    expect(Array.from((await s.run({ x })).y.data as Float32Array)).toEqual(Array.from((await mlp.run({ x })).y.data as Float32Array))
    await s.dispose()
  })

  it('accepts onnxruntime-common tensors as feeds', async () => {
    const ort = await import('onnxruntime-node')
    const data = new Float32Array(32).map((_, i) => i / 32)
    const theirs = new ort.Tensor('float32', data, [2, 16])
    const ours = await mlp.run({ x: theirs })
    const ref = await (await ort.InferenceSession.create(fixture('tiny_mlp.onnx'))).run({ x: theirs })
    const want = ref.y.data as Float32Array
    ;(ours.y.data as Float32Array).forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-6))
    // Plain objects too.
    const plain = await mlp.run({ x: { type: 'float32', data, dims: [2, 16] } })
    expect(Array.from(plain.y.data as Float32Array)).toEqual(Array.from(ours.y.data as Float32Array))
  })

  it('fetches only the requested outputs', async () => {
    const s = await Session.create(fixture('all_types.onnx'))
    const feeds: Record<string, Tensor> = {}
    for (const i of s.inputs) {
      const t = i.type as string
      feeds[i.name] =
        t === 'string' ? new Tensor('string', ['a'], [1, 1]) : new Tensor(t as 'float32', [1] as never, [1, 1])
    }
    const out = await s.run(feeds, { outputs: ['out_int32', 'out_string', 'out_int32'] })
    expect(Object.keys(out)).toEqual(['out_int32', 'out_string'])
    await s.dispose()
  })
})

describe('every tensor type round-trips', () => {
  let s: Session
  beforeAll(async () => {
    s = await Session.create(fixture('all_types.onnx'))
  })
  afterAll(() => s.dispose())

  const cases: Record<string, unknown> = {
    float32: Float32Array.from([0, -1.5, 3.25, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]),
    float64: Float64Array.from([Number.MAX_VALUE, -Number.MIN_VALUE, Math.PI, Number.NaN, -Infinity, 0]),
    float16: Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0xfc00, 0x7e00, 0x0001]),
    int8: Int8Array.from([-128, 127, 0, 1, -1, 5]),
    uint8: Uint8Array.from([0, 255, 1, 2, 3, 4]),
    int16: Int16Array.from([-32768, 32767, 0, 1, -1, 7]),
    uint16: Uint16Array.from([0, 65535, 1, 2, 3, 4]),
    int32: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 1, -1, 9]),
    uint32: Uint32Array.from([0, 2 ** 32 - 1, 1, 2, 3, 4]),
    int64: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, -1n, 2n ** 53n + 1n]),
    uint64: BigUint64Array.from([0n, 2n ** 64n - 1n, 1n, 2n, 3n, 2n ** 53n + 1n]),
    bool: Uint8Array.from([1, 0, 1, 1, 0, 0]),
    string: ['', 'ascii', 'héllo wörld', '日本語テキスト', '🦀 emoji 👍🏽', 'tab\tnew\nline'],
  }

  for (const [type, data] of Object.entries(cases)) {
    it(`${type} with symbolic dims [2, 3]`, async () => {
      const feeds: Record<string, Tensor> = {}
      for (const [t, d] of Object.entries(cases)) feeds[`in_${t}`] = new Tensor(t as 'float32', d as Float32Array, [2, 3])
      const out = await s.run(feeds)
      const o = out[`out_${type}`]
      expect(o.type).toBe(type)
      expect(o.dims).toEqual([2, 3])
      if (type === 'string') expect(o.data).toEqual(data)
      else {
        expect(o.data.constructor).toBe((data as object).constructor)
        expect(Array.from(o.data as ArrayLike<unknown>)).toEqual(Array.from(data as ArrayLike<unknown>))
      }
    })
  }

  it('accepts boolean[] for bool and normalises non-0/1 bytes', async () => {
    const feeds: Record<string, Tensor> = {}
    for (const [t, d] of Object.entries(cases)) feeds[`in_${t}`] = new Tensor(t as 'float32', d as Float32Array, [2, 3])
    feeds.in_bool = new Tensor([true, false, true, false, false, true], [2, 3]) as Tensor
    expect(feeds.in_bool.type).toBe('bool')
    let out = await s.run(feeds, { outputs: ['out_bool'] })
    expect(Array.from(out.out_bool.data as Uint8Array)).toEqual([1, 0, 1, 0, 0, 1])
    feeds.in_bool = new Tensor('bool', Uint8Array.from([2, 0, 255, 0, 0, 1]), [2, 3])
    out = await s.run(feeds, { outputs: ['out_bool'] })
    expect(Array.from(out.out_bool.data as Uint8Array)).toEqual([1, 0, 1, 0, 0, 1])
  })

  it('runs zero-size tensors and returns zero-size outputs', async () => {
    const feeds: Record<string, Tensor> = {}
    for (const t of Object.keys(cases)) {
      feeds[`in_${t}`] = t === 'string' ? new Tensor('string', [], [0, 3]) : new Tensor(t as 'float32', [] as never, [0, 3])
    }
    const out = await s.run(feeds)
    for (const t of Object.keys(cases)) {
      expect(out[`out_${t}`].dims).toEqual([0, 3])
      expect(out[`out_${t}`].size).toBe(0)
      expect((out[`out_${t}`].data as { length: number }).length).toBe(0)
    }
  })

  it('reports symbolic, dynamic and fixed dims', async () => {
    const d = await Session.create(fixture('dims.onnx'))
    expect(d.inputs[0].dims).toEqual(['batch', -1, 3])
    for (const dims of [[1, 1, 3], [2, 5, 3], [4, 0, 3]]) {
      const n = dims[0] * dims[1] * dims[2]
      const { y } = await d.run({ x: new Tensor('float32', new Float32Array(n).fill(1.5), dims) })
      expect(y.dims).toEqual(dims)
      expect(Array.from(y.data as Float32Array)).toEqual(new Array(n).fill(3))
    }
    await rejectsWith(d.run({ x: new Tensor('float32', new Float32Array(4), [1, 1, 4]) }), 'ERR_INVALID_INPUT')
    await d.dispose()
  })
})

describe('non-tensor outputs', () => {
  it('loads a ZipMap model; its map output comes back as values (values.test.ts), its tensor output alone on request', async () => {
    const s = await Session.create(fixture('zipmap.onnx'))
    expect(s.outputs.map((o) => o.type)).toEqual(['int64', 'sequence'])
    const x = new Tensor('float32', Float32Array.from([0.1, 0.2, 0.3, 0.4, -1, -2, 3, 4]), [2, 4])
    const all = await s.run({ float_input: x })
    expect((all.output_probability as unknown as Map<bigint, number>[]).map((m) => m.size)).toEqual([3, 3])
    const { output_label } = await s.run({ float_input: x }, { outputs: ['output_label'] })
    expect(output_label.type).toBe('int64')
    expect(output_label.dims).toEqual([2])
    await s.dispose()
  })
})
