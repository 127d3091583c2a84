// Inputs are safe by default: a queued run computes on exactly the values its
// caller passed at call time, even when the caller writes to the buffer, or
// transfers it to a worker, after `run` returns and before the run executes.
// Borrowing (no copy) is an explicit opt-in, `zeroCopy: true`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Session, Tensor } from '../index.js'
import { fixture, rejectsWith } from './helpers'

const ROWS = 8192 // 512 KiB of float32 per run, so that queued runs wait a while
const RUNS = 30

const input = (seed: number): Float32Array => {
  const a = new Float32Array(ROWS * 16)
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(seed * 131 + i * 0.37)
  return a
}

describe('queued runs copy their inputs at call time', () => {
  let s: Session
  let want: Float32Array[]
  beforeAll(async () => {
    // One slot and no inline runs: every run but the first waits in the queue.
    s = await Session.create(fixture('tiny_mlp.onnx'), { poolSize: 1, inlineThresholdMicros: 0 })
    want = []
    for (let k = 0; k < RUNS; k++) want.push((await s.run({ x: new Tensor('float32', input(k), [ROWS, 16]) })).y.data as Float32Array)
  })
  afterAll(() => s.dispose())

  it('a write to the buffer after run returns changes nothing', async () => {
    const buffers = Array.from({ length: RUNS }, (_, k) => input(k))
    const pending = buffers.map((b) => s.run({ x: new Tensor('float32', b, [ROWS, 16]) }))
    for (const b of buffers) b.fill(1e6)
    const got = await Promise.all(pending)
    got.forEach((r, k) => expect(r.y.data, `run ${k}`).toEqual(want[k]))
  })

  it('a buffer transferred away (detached) after run returns changes nothing', async () => {
    const buffers = Array.from({ length: RUNS }, (_, k) => input(k))
    const pending = buffers.map((b) => s.run({ x: new Tensor('float32', b, [ROWS, 16]) }))
    // Transfer detaches each buffer here, as postMessage to a worker would;
    // the new owner then overwrites it.
    const moved = buffers.map((b) => new Float32Array(structuredClone(b.buffer, { transfer: [b.buffer] })))
    for (const m of moved) m.fill(-1e6)
    expect(buffers.every((b) => b.length === 0)).toBe(true)
    const got = await Promise.all(pending)
    got.forEach((r, k) => expect(r.y.data, `run ${k}`).toEqual(want[k]))
  })
})

describe('zeroCopy', () => {
  it('is a boolean session option, off by default, and runs borrow buffers when on', async () => {
    await rejectsWith(Session.create(fixture('tiny_mlp.onnx'), { zeroCopy: 'yes' as never }), 'ERR_INVALID_ARGUMENT')
    const s = await Session.create(fixture('tiny_mlp.onnx'), { zeroCopy: true, poolSize: 1, inlineThresholdMicros: 0 })
    const x = input(3)
    const untouched = (await s.run({ x: new Tensor('float32', x, [ROWS, 16]) })).y.data
    // Honouring the contract (no write until settled), results are the same as with a copy.
    const again = await Promise.all([0, 1, 2].map(() => s.run({ x: new Tensor('float32', x, [ROWS, 16]) })))
    again.forEach((r) => expect(r.y.data).toEqual(untouched))
    await s.dispose()
  })
})
