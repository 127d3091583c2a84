// The inline rule's per-turn budget: a sequential await loop whose turn has
// spent its 1 ms of inline work waits for the next turn and runs inline there
// (no hop to a worker), the event loop still gets its turns, and a burst
// still spreads over the workers.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Pipeline, Session, Tensor, type RunTiming } from '../index.js'
import { fixture, readJson } from './helpers'

const x = new Tensor('float32', new Float32Array(16).fill(0.1), [1, 16])
// The highest threshold (1 ms), far above these runs (~10 µs), so that the
// turn budget decides. A run stalled for milliseconds on a loaded machine
// can still lift the estimate past it, hence "almost none" below: before the
// rule, one run in about 80 went to a worker.
const ALWAYS_FAST = { inlineThresholdMicros: 1000, intraOpThreads: 1 }
// One in 200: the old rule sent one in 80 to a worker, and a machine busy
// with other work can push the odd run's estimate past the threshold.
const almostNone = (runs: RunTiming[]): number => Math.ceil(runs.length / 200)

describe('the inline budget per event-loop turn', () => {
  it('a sequential loop past the budget stays inline, and other callbacks still run', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), ALWAYS_FAST)
    const seen: RunTiming[] = []
    let firedAt = -1
    setImmediate(() => {
      firedAt = seen.length
    })
    const want = (await s.run({ x })).y.data
    const started = performance.now()
    // Enough runs to spend the 1 ms budget many times over.
    let i = 0
    for (; i < 4000 && performance.now() - started < 5000; i++) {
      const out = await s.run({ x }, { onTiming: (t) => seen.push(t) })
      expect(out.y.data).toEqual(want)
    }
    const elapsed = performance.now() - started
    expect(elapsed, 'the loop spent more than a few turns of budget').toBeGreaterThan(5)
    // The runs were inline: (almost) none paid a hop to a worker.
    expect(seen.filter((t) => !t.inline).length).toBeLessThanOrEqual(almostNone(seen))
    // The immediate queued before the loop ran while the loop was going.
    expect(firedAt).toBeGreaterThanOrEqual(0)
    expect(firedAt).toBeLessThan(i)
    await s.dispose()
  })

  it('a burst still goes to the workers once the turn budget is spent', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { ...ALWAYS_FAST, poolSize: 2 })
    await s.run({ x })
    const seen: RunTiming[] = []
    const runs = Array.from({ length: 3000 }, () => s.run({ x }, { onTiming: (t) => seen.push(t) }))
    const outs = await Promise.all(runs)
    expect(outs).toHaveLength(3000)
    expect(seen.some((t) => t.inline)).toBe(true)
    expect(seen.some((t) => !t.inline)).toBe(true)
    expect(s.pendingRuns).toBe(0)
    await s.dispose()
  })

  it('a run waiting for the next turn is refused once the session is disposed', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), ALWAYS_FAST)
    await s.run({ x })
    // Spend the budget in this turn, then queue one more and dispose at once.
    const t0 = performance.now()
    const earlier: Promise<unknown>[] = []
    while (performance.now() - t0 < 3) earlier.push(s.run({ x }).catch((e: unknown) => e))
    // Its expectation is attached before the dispose that rejects it.
    const last = expect(s.run({ x })).rejects.toMatchObject({ code: 'ERR_DISPOSED' })
    await s.dispose()
    await last
    // The ones run inline resolved; those queued behind were refused, none lost.
    const settled = await Promise.all(earlier)
    for (const r of settled) if (r instanceof Error) expect(r).toMatchObject({ code: 'ERR_DISPOSED' })
  })

  it('pipelines: a sequential loop of run stays inline past the budget', async () => {
    const dir = fixture('penguins')
    const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
    const p = await Pipeline.load(join(dir, 'pipeline.json'), { session: ALWAYS_FAST })
    const seen: RunTiming[] = []
    await p.run(records[0])
    for (let i = 0; i < 3000; i++) await p.run(records[i % records.length], { onTiming: (t) => seen.push(t) })
    expect(seen).toHaveLength(3000)
    expect(seen.filter((t) => !t.inline).length).toBeLessThanOrEqual(almostNone(seen))
    await p.dispose()
  })
})
