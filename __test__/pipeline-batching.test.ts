import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { OxinferError, Pipeline, type PipelineResult, type RunTiming } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const specPath = join(fixture('penguins'), 'pipeline.json')
const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')

let seed = 7
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32

/** A mix of good records and bad ones (wrong types, a missing required value). */
function mix(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => {
    const r = { ...records[Math.floor(rand() * records.length)] }
    if (i % 17 === 5) r.bill_length_mm = 'long'
    if (i % 23 === 9) r.island = 42
    return r
  })
}

type Outcome = { ok: true; r: PipelineResult } | { ok: false; e: OxinferError }
const settle = (p: Promise<PipelineResult>): Promise<Outcome> => p.then((r) => ({ ok: true as const, r }), (e: OxinferError) => ({ ok: false as const, e }))

describe('pipelines with dynamic batching', () => {
  it('give every caller the result, or the error, the pipeline gives without batching', async () => {
    const plain = await Pipeline.load(specPath)
    const batched = await Pipeline.load(specPath, { batching: { maxBatchSize: 32 } })
    const recs = mix(600)
    const want: Outcome[] = []
    for (const r of recs) want.push(await settle(plain.run(r)))
    const timings: RunTiming[] = []
    const got = await Promise.all(recs.map((r) => settle(batched.run(r, { onTiming: (t) => timings.push(t) }))))
    expect(want.filter((w) => !w.ok).length).toBeGreaterThan(20)
    got.forEach((g, i) => {
      const w = want[i]
      expect(g.ok, `record ${i}`).toBe(w.ok)
      if (g.ok && w.ok) {
        expect(g.r.label).toBe(w.r.label)
        expect(g.r.labelIndex).toBe(w.r.labelIndex)
        g.r.scores.forEach((s, j) => expect(Math.abs(s - w.r.scores[j])).toBeLessThan(1e-6))
      } else if (!g.ok && !w.ok) {
        expect(g.e).toBeInstanceOf(OxinferError)
        expect([g.e.code, g.e.row, g.e.field, g.e.message]).toEqual([w.e.code, w.e.row, w.e.field, w.e.message])
      }
    })
    // They ran in batches of up to 32, all 600 in far fewer runs.
    expect(timings.length).toBe(got.filter((g) => g.ok).length)
    expect(Math.max(...timings.map((t) => t.batchRequests))).toBe(32)
    expect(timings.every((t) => t.batchRequests <= 32 && t.batchSize === t.batchRequests)).toBe(true)
    await Promise.all([plain.dispose(), batched.dispose()])
  })

  it('attaches stage timings to the callers who ask, and cuts at preferred sizes', async () => {
    // One slot, so that batches complete in the order they are cut (the
    // default pool for this light model has one slot per core).
    const p = await Pipeline.load(specPath, { batching: { maxBatchSize: 16, preferredBatchSizes: [4, 8] }, session: { poolSize: 1 } })
    const sizes: number[] = []
    const runs = records.slice(0, 21).map((r, i) => p.run(r, { timings: i === 0, onTiming: (t) => sizes.push(t.batchRequests) }))
    const out = await Promise.all(runs)
    expect(out[0].timings?.inferenceMicros).toBeGreaterThanOrEqual(0)
    expect(out[1].timings).toBeUndefined()
    // 21 gathered in one turn: 16 fit, cut to 8; then 8; then 5 → 4; then 1.
    expect(sizes).toEqual([...Array(8).fill(8), ...Array(8).fill(8), ...Array(4).fill(4), 1])
    await p.dispose()
  })

  it('applies maxQueue, timeouts, abort, priority and dispose per record', async () => {
    const p = await Pipeline.load(specPath, { batching: { maxBatchSize: 8, maxQueue: 6, priorityLevels: 2, maxDelayMicros: 20_000 } })
    // Held open for 20 ms: six gather, the seventh is refused.
    const ac = new AbortController()
    const held = records.slice(0, 6).map((r, i) => settle(p.run(r, i === 2 ? { signal: ac.signal } : i === 3 ? { timeoutMs: 1 } : {})))
    await rejectsWith(p.run(records[7]), 'ERR_OVERLOADED', /queue is full/)
    ac.abort('no longer needed')
    await new Promise((r) => setTimeout(r, 5))
    const outcomes = await Promise.all(held)
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.e.code))).toEqual(['ok', 'ok', 'ERR_ABORTED', 'ERR_TIMEOUT', 'ok', 'ok'])
    // Priority 1 goes before the default level when both wait.
    const order: string[] = []
    const lo = records.slice(0, 3).map((r) => p.run(r).then(() => order.push('low')))
    const hi = records.slice(3, 6).map((r) => p.run(r, { priority: 1 }).then(() => order.push('high')))
    await Promise.all([...lo, ...hi])
    expect(order).toEqual(['high', 'high', 'high', 'low', 'low', 'low'])
    await rejectsWith(p.run(records[0], { priority: 3 }), 'ERR_INVALID_ARGUMENT', /priority/)
    // Dispose rejects what is still gathered.
    const late = settle(p.run(records[0]))
    await p.dispose()
    const l = await late
    expect(l.ok ? 'ok' : l.e.code).toBe('ERR_DISPOSED')
    await rejectsWith(p.run(records[0]), 'ERR_DISPOSED')
  })

  it('merges runs made in different event-loop turns while a batch is held open (maxDelayMicros in µs, natively)', async () => {
    // One slot: with the default pool (a slot per core for this light model)
    // the second run may find a free slot of its own instead of the held batch.
    const p = await Pipeline.load(specPath, { batching: { maxBatchSize: 8, maxDelayMicros: 300 }, session: { poolSize: 1 } })
    // Each attempt: one run in this turn, one in the next (a setImmediate
    // later), each crossing into native code on its own. The worker holds
    // the first one's batch open for 300 µs, so the second joins it. Turns on
    // a loaded machine can take longer than that, hence a few attempts.
    let merged = 0
    for (let attempt = 0; attempt < 10 && merged === 0; attempt++) {
      const timings: RunTiming[] = []
      const first = p.run(records[attempt], { onTiming: (t) => timings.push(t) })
      await new Promise((r) => setImmediate(r))
      const second = p.run(records[attempt + 1], { onTiming: (t) => timings.push(t) })
      const [a, b] = await Promise.all([first, second])
      expect([a.label, b.label]).toEqual([(await p.run(records[attempt])).label, (await p.run(records[attempt + 1])).label])
      if (timings.every((t) => t.batchRequests === 2 && t.batchSize === 2)) merged++
    }
    expect(merged).toBe(1)
    await p.dispose()
  })

  it('refuses bad batching options', async () => {
    await expect(Pipeline.load(specPath, { batching: { maxBatchSize: 0 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(Pipeline.load(specPath, { batching: { inputs: {} } as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/inputs/) })
    await expect(Pipeline.load(specPath, { batching: { maxBatchSize: 4, preferredBatchSizes: [8] } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })
})
