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

describe('every input container is copied, a Node Buffer and a string[] included', () => {
  it('a Buffer (whose own slice is a view) and a string array written after run returns change nothing', async () => {
    const s = await Session.create(fixture('all_types.onnx'), { poolSize: 1, inlineThresholdMicros: 0 })
    const n = 4096
    const feeds = (u8: Uint8Array, strings: string[]): Record<string, Tensor> => {
      const t = (type: string, data: unknown): Tensor => new Tensor(type as never, data as never, [1, n])
      const zeros = <T>(C: new (n: number) => T): T => new C(n)
      return {
        in_float32: t('float32', zeros(Float32Array)), in_float64: t('float64', zeros(Float64Array)), in_float16: t('float16', zeros(Uint16Array)),
        in_int8: t('int8', zeros(Int8Array)), in_uint8: t('uint8', u8), in_int16: t('int16', zeros(Int16Array)), in_uint16: t('uint16', zeros(Uint16Array)),
        in_int32: t('int32', zeros(Int32Array)), in_uint32: t('uint32', zeros(Uint32Array)), in_int64: t('int64', zeros(BigInt64Array)),
        in_uint64: t('uint64', zeros(BigUint64Array)), in_bool: t('bool', zeros(Uint8Array)), in_string: t('string', strings),
      }
    }
    const buffers = Array.from({ length: 8 }, (_, k) => Buffer.alloc(n, k + 1))
    const strings = buffers.map((_, k) => Array.from({ length: n }, () => `s${k}`))
    const pending = buffers.map((b, k) => s.run(feeds(b, strings[k]), { outputs: ['out_uint8', 'out_string'] }))
    buffers.forEach((b) => b.fill(0xee))
    strings.forEach((a) => a.fill('changed'))
    const got = await Promise.all(pending)
    got.forEach((r, k) => {
      expect((r.out_uint8.data as Uint8Array).every((v) => v === k + 1), `run ${k}`).toBe(true)
      expect((r.out_string.data as string[]).every((v) => v === `s${k}`), `run ${k}`).toBe(true)
    })
    await s.dispose()
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
