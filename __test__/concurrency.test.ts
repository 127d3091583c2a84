import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
import { describe, expect, it } from 'vitest'

import { Session, Tensor } from '../index.js'
import { fixture, rejectsWith } from './helpers'

const row = (v: number, rows = 1) => new Tensor('float32', new Float32Array(16 * rows).fill(v), [rows, 16])
const slowFeeds = (iters: bigint) => ({
  x: new Tensor('float32', new Float32Array(256 * 256).fill(0.01), [256, 256]),
  iters: new Tensor('int64', BigInt64Array.from([iters]), []),
})

describe('abort', () => {
  it('an already-aborted signal rejects at once, with the reason as cause', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'))
    const ac = new AbortController()
    const reason = new Error('stop')
    ac.abort(reason)
    const e = await rejectsWith(s.run({ x: row(1) }, { signal: ac.signal }), 'ERR_ABORTED')
    expect(e.cause).toBe(reason)
    await s.dispose()
  })

  it('terminates a running run through the engine', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1 })
    const ac = new AbortController()
    const t0 = performance.now()
    const p = s.run(slowFeeds(1_000_000n), { signal: ac.signal })
    setTimeout(() => ac.abort('enough'), 150)
    const e = await rejectsWith(p, 'ERR_ABORTED')
    expect(e.cause).toBe('enough')
    expect(performance.now() - t0).toBeLessThan(5000)
    // The session is still usable afterwards.
    const { y } = await s.run(slowFeeds(1n))
    expect(y.dims).toEqual([256, 256])
    await s.dispose()
  })

  it('removes a queued run without waiting for the one ahead of it', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1, poolSize: 1 })
    const first = new AbortController()
    const running = s.run(slowFeeds(1_000_000n), { signal: first.signal })
    const queued = new AbortController()
    const p = s.run(slowFeeds(1n), { signal: queued.signal })
    await new Promise((r) => setTimeout(r, 50))
    const t0 = performance.now()
    queued.abort()
    await rejectsWith(p, 'ERR_ABORTED')
    expect(performance.now() - t0).toBeLessThan(100)
    first.abort()
    await rejectsWith(running, 'ERR_ABORTED')
    await s.dispose()
  })

  it('aborting after completion changes nothing', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { inlineThresholdMicros: 0 })
    const ac = new AbortController()
    const r = await s.run({ x: row(1) }, { signal: ac.signal })
    ac.abort()
    expect(r.y.dims).toEqual([1, 2])
    await s.dispose()
  })
})

describe('dispose', () => {
  it('rejects later runs, and a second dispose resolves at once', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'))
    await s.dispose()
    await rejectsWith(s.run({ x: row(1) }), 'ERR_DISPOSED')
    await s.dispose()
    await s[Symbol.asyncDispose]()
  })

  it('waits for executing runs, which resolve first', async () => {
    const s = await Session.create(fixture('slow_loop.onnx'), { intraOpThreads: 1 })
    const order: string[] = []
    const run = s.run(slowFeeds(500n)).then(() => order.push('run'))
    await new Promise((r) => setTimeout(r, 30))
    await s.dispose().then(() => order.push('dispose'))
    await run
    expect(order).toEqual(['run', 'dispose'])
  })

  it('during 1,000 runs in flight: each resolves or rejects with ERR_DISPOSED, none is lost', async () => {
    // Heavy enough (~0.5 ms a run) that the queue cannot drain while the runs are submitted.
    const s = await Session.create(fixture('heavy_matmul.onnx'), { intraOpThreads: 1, inlineThresholdMicros: 0 })
    const x = new Tensor('float32', new Float32Array(8 * 1024).fill(0.01), [8, 1024])
    const want = Array.from((await s.run({ x })).y.data as Float32Array)
    const runs = Array.from({ length: 1000 }, () => s.run({ x }))
    // Handlers go on before awaiting, so no rejection is ever unhandled.
    const all = Promise.allSettled(runs)
    await s.dispose()
    const settled = await all
    let ok = 0
    for (const r of settled) {
      if (r.status === 'fulfilled') {
        ok++
        expect(Array.from(r.value.y.data as Float32Array)).toEqual(want)
      } else {
        expect(r.reason.code).toBe('ERR_DISPOSED')
      }
    }
    expect(settled).toHaveLength(1000)
    expect(ok).toBeLessThan(1000)
  })
})

describe('concurrency', () => {
  it('10,000 concurrent runs on one session all resolve correctly', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 2, intraOpThreads: 1 })
    const refs: number[][] = []
    for (let v = 0; v < 7; v++) refs.push(Array.from((await s.run({ x: row(v / 7) })).y.data as Float32Array))
    const runs = Array.from({ length: 10_000 }, (_, i) => s.run({ x: row((i % 7) / 7) }))
    const results = await Promise.all(runs)
    results.forEach((r, i) => expect(Array.from(r.y.data as Float32Array)).toEqual(refs[i % 7]))
    expect(s.pendingRuns).toBe(0)
    await s.dispose()
  })

  it('mixed valid and invalid concurrent runs settle independently', async () => {
    const s = await Session.create(fixture('tiny_mlp.onnx'), { inlineThresholdMicros: 0 })
    const runs = Array.from({ length: 200 }, (_, i) =>
      i % 3 === 0 ? s.run({ x: new Tensor('float32', new Float32Array(15), [1, 15]) }) : s.run({ x: row(1) }),
    )
    const settled = await Promise.allSettled(runs)
    settled.forEach((r, i) => {
      if (i % 3 === 0) expect(r.status === 'rejected' && r.reason.code).toBe('ERR_INVALID_INPUT')
      else expect(r.status).toBe('fulfilled')
    })
    await s.dispose()
  })

  it('many sessions run side by side', async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, () => Session.create(fixture('tiny_mlp.onnx'), { intraOpThreads: 1 })))
    const results = await Promise.all(sessions.flatMap((s) => Array.from({ length: 50 }, () => s.run({ x: row(2, 3) }))))
    const first = Array.from(results[0].y.data as Float32Array)
    for (const r of results) expect(Array.from(r.y.data as Float32Array)).toEqual(first)
    await Promise.all(sessions.map((s) => s.dispose()))
  })
})

describe('worker priority', () => {
  const niceOf = (prefix: string): number[] => {
    const { readdirSync, readFileSync } = require('node:fs') as typeof import('node:fs')
    const out: number[] = []
    for (const t of readdirSync('/proc/self/task')) {
      try {
        if (!readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith(prefix)) continue
        const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8')
        out.push(Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]))
      } catch {
        // The thread ended meanwhile.
      }
    }
    return out
  }

  it.runIf(process.platform === 'linux')('runs inference threads below the JS thread by default, and at normal priority on request', async () => {
    const low = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 2 })
    const lowNice = niceOf('oxinfer-run')
    expect(lowNice.length).toBeGreaterThanOrEqual(2)
    expect(lowNice.every((n) => n === 10)).toBe(true)
    await low.dispose()
    const normal = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 1, workerPriority: 'normal' })
    expect(niceOf('oxinfer-run')).toEqual([0])
    await normal.dispose()
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { workerPriority: 'idle' } as never), 'ERR_INVALID_ARGUMENT')
  })
})
