// `session.stats()` and `pipeline.stats()`: the in-process view of what a
// session's requests did, counted natively: successes, failures by code
// (a full queue, a queue timeout), executions (merged batches once), mean
// time per stage and percentiles. Disposed sessions refuse it.
import { describe, expect, it } from 'vitest'

import { Pipeline, Session, Tensor } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const slow = (iters: bigint) => ({
  x: new Tensor('float32', new Float32Array(256 * 256).fill(0.01), [256, 256]),
  iters: new Tensor('int64', BigInt64Array.from([iters]), []),
})
const x16 = (seed: number) => new Tensor('float32', Float32Array.from({ length: 16 }, (_, i) => Math.sin(seed + i)), [1, 16])

describe('stats()', () => {
  it('counts successes, merged executions and stage times', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { inlineThresholdMicros: 0 })
    try {
      expect(s.stats()).toMatchObject({ success: 0, failures: {}, executions: 0, p50Us: null })
      await Promise.all(Array.from({ length: 64 }, (_, i) => s.run({ x: x16(i) })))
      const st = s.stats()
      expect(st.success).toBe(64)
      // Concurrent runs merge: fewer executions than requests, bigger batches than one row.
      expect(st.executions).toBeGreaterThan(0)
      expect(st.executions).toBeLessThanOrEqual(64)
      expect(st.meanBatchRows).toBeGreaterThanOrEqual(1)
      expect(st.meanInferUs).toBeGreaterThan(0)
      expect(st.p50Us!).toBeGreaterThan(0)
      expect(st.p99Us!).toBeGreaterThanOrEqual(st.p50Us!)
      expect([st.queued, st.pending]).toEqual([0, 0])
    } finally {
      await s.dispose()
    }
    expect(() => s.stats()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }))
  })

  it('counts failures by error code', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 1, maxQueue: 2 } })
    try {
      const running = s.run(slow(300n))
      await new Promise((r) => setTimeout(r, 20))
      const late = s.run(slow(1n), { timeoutMs: 5 })
      const queued = s.run(slow(1n))
      await rejectsWith(s.run(slow(1n)), 'ERR_OVERLOADED')
      await rejectsWith(late, 'ERR_TIMEOUT')
      await Promise.all([running, queued])
      expect(s.stats()).toMatchObject({ success: 2, failures: { ERR_OVERLOADED: 1, ERR_TIMEOUT: 1 } })
    } finally {
      await s.dispose()
    }
  })

  it("a pipeline's stats are its session's", async () => {
    const p = await Pipeline.load(fixture('penguins/pipeline.json'))
    try {
      const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
      await p.runBatch(records.slice(0, 50))
      await p.run(records[0])
      const st = p.stats()
      expect(st.success).toBe(2)
      expect(st.meanPreUs + st.meanInferUs).toBeGreaterThan(0)
    } finally {
      await p.dispose()
    }
  })
})
