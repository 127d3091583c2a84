// Thread defaults that fit the model: with neither poolSize nor
// intraOpThreads given, a model timed under 1 ms per run gets one intra-op
// thread per slot and min(cores, 4) slots, as does a small model that cannot
// be timed on zero inputs; given options are kept.
import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'

import { Session, Tensor } from '../index.js'
import { fixture } from './helpers'

describe('thread defaults', () => {
  it('a light model gets a pool of single-threaded slots; options given are kept', async () => {
    const light = await Session.create(fixture('tiny_mlp.onnx'))
    expect(light.poolSize).toBe(Math.min(availableParallelism(), 4))
    // The pool serves concurrent runs, with the same results as one slot.
    const x = new Tensor('float32', Float32Array.from({ length: 64 }, (_, i) => i / 64), [4, 16])
    const one = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 1 })
    expect(one.poolSize).toBe(1)
    const want = (await one.run({ x })).y.data
    for (const r of await Promise.all(Array.from({ length: 8 }, () => light.run({ x })))) expect(r.y.data).toEqual(want)
    const threads = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 2 })
    expect(threads.poolSize).toBe(1)
    const three = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 3 })
    expect(three.poolSize).toBe(3)
    await Promise.all([light, one, threads, three].map((s) => s.dispose()))
  })

  it('a small model that cannot run on zero inputs (a string input) counts as light', async () => {
    const s = await Session.create(fixture('all_types.onnx'))
    expect(s.inputs.some((i) => i.type === 'string')).toBe(true)
    expect(s.poolSize).toBe(Math.min(availableParallelism(), 4))
    await s.dispose()
  })
})
