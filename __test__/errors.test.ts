import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { OxinferError, Session, Tensor, configure } from '../index.js'
import { fixture, rejectsWith, require, throwsWith } from './helpers'

describe('Tensor construction', () => {
  it('infers types from typed arrays', () => {
    expect(new Tensor(new Float32Array(3)).type).toBe('float32')
    expect(new Tensor(new BigInt64Array(2)).type).toBe('int64')
    expect(new Tensor(['a', 'b']).type).toBe('string')
    expect(new Tensor(new Uint8Array(4), [2, 2]).dims).toEqual([2, 2])
    expect(new Tensor('int64', [1, 2n, 3]).data).toEqual(BigInt64Array.from([1n, 2n, 3n]))
    expect(new Tensor('float32', [1, 2, 3], [3]).data).toBeInstanceOf(Float32Array)
  })

  it('refuses malformed tensors with ERR_INVALID_ARGUMENT', () => {
    throwsWith(() => new Tensor('float128' as never, new Float32Array(1)), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('float32', new Float32Array(5), [2, 2]), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('float32', new Float32Array(4), [2, 2.5]), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('float32', new Float32Array(4), [-2, -2]), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('float32', new Float32Array(4), '2,2' as never), 'ERR_INVALID_ARGUMENT')
    const e = throwsWith(() => new Tensor('float32', ['1', 'two'] as never), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toContain('string')
    throwsWith(() => new Tensor('float32', new Int32Array(4)), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('string', [1, 2] as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('bool', ['yes'] as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('int64', [1.5] as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor({} as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => new Tensor('float32', null as never), 'ERR_INVALID_ARGUMENT')
  })
})

describe('run errors', () => {
  let mlp: Session
  let add: Session
  beforeAll(async () => {
    mlp = await Session.create(fixture('tiny_mlp.onnx'))
    add = await Session.create(fixture('add_int64.onnx'))
  })
  afterAll(async () => {
    await mlp.dispose()
    await add.dispose()
  })

  const x = (rows = 1) => new Tensor('float32', new Float32Array(16 * rows), [rows, 16])
  const i64 = (n = 3) => new Tensor('int64', new BigInt64Array(n), [n])

  it('a tensor of the wrong type', async () => {
    const e = await rejectsWith(mlp.run({ x: new Tensor('string', new Array(16).fill('0'), [1, 16]) }), 'ERR_INVALID_INPUT')
    expect(e.input).toBe('x')
    expect(e.message).toMatch(/expects a float32 tensor but got string/)
    await rejectsWith(mlp.run({ x: new Tensor('float64', new Float64Array(16), [1, 16]) }), 'ERR_INVALID_INPUT')
  })

  it('a wrong rank or dim', async () => {
    let e = await rejectsWith(mlp.run({ x: new Tensor('float32', new Float32Array(16), [16]) }), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/rank 2/)
    e = await rejectsWith(mlp.run({ x: new Tensor('float32', new Float32Array(15), [1, 15]) }), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/dim 1 = 16/)
    e = await rejectsWith(add.run({ a: i64(), b: i64(4) }), 'ERR_INVALID_INPUT')
    expect(e.input).toBe('b')
  })

  it('a missing input, an unknown input, an unknown output', async () => {
    let e = await rejectsWith(add.run({ a: i64() }), 'ERR_INVALID_INPUT')
    expect(e.input).toBe('b')
    e = await rejectsWith(mlp.run({ x: x(), z: x() }), 'ERR_INVALID_INPUT')
    expect(e.input).toBe('z')
    e = await rejectsWith(mlp.run({ x: x() }, { outputs: ['nope'] }), 'ERR_INVALID_INPUT')
    expect(e.message).toContain("'nope'")
    await rejectsWith(mlp.run({}), 'ERR_INVALID_INPUT')
  })

  it('strings in a numeric tensor, and other malformed feeds', async () => {
    const e = await rejectsWith(mlp.run({ x: { type: 'float32', data: ['a', 'b'], dims: [1, 2] } }), 'ERR_INVALID_ARGUMENT')
    expect(e.input).toBe('x')
    await rejectsWith(mlp.run({ x: { type: 'float32', data: new Float32Array(3), dims: [1, 16] } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(mlp.run({ x: { type: 'nope', data: new Float32Array(16), dims: [1, 16] } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(mlp.run({ x: 42 as never }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(mlp.run(null as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(mlp.run({ x: x() }, { output: ['y'] } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(mlp.run({ x: x() }, { signal: {} } as never), 'ERR_INVALID_ARGUMENT')
  })

  it('NaN and Inf pass through', async () => {
    const data = new Float32Array(16)
    data[0] = Number.NaN
    data[1] = Number.POSITIVE_INFINITY
    const { y } = await mlp.run({ x: new Tensor('float32', data, [1, 16]) })
    expect(y.dims).toEqual([1, 2])
    expect(Array.from(y.data as Float32Array).some((v) => Number.isNaN(v))).toBe(true)
  })

  it('never throws synchronously from a promise-returning function', () => {
    expect(() => mlp.run(undefined as never).catch(() => {})).not.toThrow()
    expect(() => Session.create(42 as never).catch(() => {})).not.toThrow()
  })

  it('int64 arithmetic comes back as BigInt64Array', async () => {
    const a = new Tensor('int64', BigInt64Array.from([1n, -2n, 2n ** 62n]), [3])
    const r = await add.run({ a, b: a })
    expect(r.c.data).toEqual(BigInt64Array.from([2n, -4n, 2n ** 63n * -1n]))
  })
})

describe('load errors', () => {
  it('a path that does not exist', async () => {
    // A file that cannot be opened is ERR_FILE with its path; only bytes ONNX Runtime cannot parse are ERR_MODEL_LOAD.
    const e = await rejectsWith(Session.create(fixture('missing.onnx')), 'ERR_FILE')
    expect([e.message.includes('missing.onnx'), e.path]).toEqual([true, fixture('missing.onnx')])
    await rejectsWith(Session.create(''), 'ERR_INVALID_ARGUMENT')
    expect((await rejectsWith(Session.create(fixture('.')), 'ERR_FILE')).message).toMatch(/not a regular file/)
  })

  it('empty, truncated and random model bytes', async () => {
    const good = readFileSync(fixture('tiny_mlp.onnx'))
    await rejectsWith(Session.create(new Uint8Array(0)), 'ERR_MODEL_LOAD')
    await rejectsWith(Session.create(new Uint8Array(good.subarray(0, good.length >> 1))), 'ERR_MODEL_LOAD')
    await rejectsWith(Session.create(new Uint8Array(good.subarray(0, 7))), 'ERR_MODEL_LOAD')
    let seed = 12345
    const random = new Uint8Array(8192).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) & 0xff)
    await rejectsWith(Session.create(random), 'ERR_MODEL_LOAD')
    // Not a model at all: a WAV file.
    await rejectsWith(Session.create(fixture('speech_16k.wav')), 'ERR_MODEL_LOAD')
  })

  it('bad and unknown options', async () => {
    const m = fixture('tiny_mlp.onnx')
    let e = await rejectsWith(Session.create(m, { poolSise: 2 } as never), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toContain('poolSise')
    await rejectsWith(Session.create(m, { poolSize: 0 }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(m, { intraOpThreads: 1.5 }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(m, { graphOptimization: 'max' } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(m, { device: 'tpu' } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(m, null as never), 'ERR_INVALID_ARGUMENT')
    e = await rejectsWith(Session.create(m, { device: 'cuda' }), 'ERR_UNSUPPORTED')
    expect(e.message).toMatch(/CUDA/)
    // A sentence on what is missing, not ONNX Runtime's raw report.
    expect(e.message).not.toMatch(/\.cc:\d+|ONNXRuntimeError/)
    await rejectsWith(Session.create(m, { device: 'cuda:1' }), 'ERR_UNSUPPORTED')
  })

  it('every option is accepted at its documented values', async () => {
    for (const graphOptimization of ['none', 'basic', 'extended', 'all'] as const) {
      const s = await Session.create(fixture('tiny_mlp.onnx'), {
        graphOptimization,
        intraOpThreads: 1,
        interOpThreads: 2,
        poolSize: 2,
        inlineThresholdMicros: 0,
        intraOpSpinning: true,
        device: 'cpu',
      })
      const { y } = await s.run({ x: new Tensor('float32', new Float32Array(16), [1, 16]) })
      expect(y.dims).toEqual([1, 2])
      await s.dispose()
    }
  })
})

describe('configure', () => {
  it('refuses unknown keys and bad values', () => {
    throwsWith(() => configure({ ortLib: '/x' } as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => configure({ logLevel: 'loud' } as never), 'ERR_INVALID_ARGUMENT')
    throwsWith(() => configure({ ortLibrary: 5 } as never), 'ERR_INVALID_ARGUMENT')
    configure({ logLevel: 'error' })
  })

  it('refuses another library once one is loaded', async () => {
    await Session.create(fixture('tiny_mlp.onnx'))
    const e = throwsWith(() => configure({ ortLibrary: '/opt/other/libonnxruntime.so.1' }), 'ERR_INVALID_ARGUMENT')
    expect(e.message).toContain('already loaded')
  })

  it('OxinferError is an Error with a code', () => {
    const e = new OxinferError('ERR_BACKEND', 'x', { input: 'i', cause: 1 })
    expect(e).toBeInstanceOf(Error)
    expect(e.name).toBe('OxinferError')
    expect([e.code, e.input, e.cause]).toEqual(['ERR_BACKEND', 'i', 1])
  })
})

describe('error codes', () => {
  // The codes are declared once, in the core; the addon exports them as an
  // enum and TS derives ErrorCode from it. Each must survive the one encoder
  // and the decoder as itself (an unknown code would decode as ERR_BACKEND).
  const native = require('./binding.js')
  const { fromNative } = require('./src/errors.js')

  it('every code the addon declares decodes to itself, with its details', () => {
    const codes = Object.values(native.ErrorCode) as string[]
    expect(codes).toHaveLength(12)
    expect(new Set(codes).size).toBe(codes.length)
    for (const code of codes) {
      let thrown: unknown
      try {
        native.debugError(code)
      } catch (e) {
        thrown = e
      }
      const e = fromNative(thrown)
      expect(e).toBeInstanceOf(OxinferError)
      expect([e.code, e.message]).toEqual([code, 'deliberate error for testing'])
      if (code === 'ERR_INVALID_INPUT') expect(e.input).toBe('x')
      if (code === 'ERR_FILE') expect(e.path).toBe('/nonexistent')
      if (code === 'ERR_INVALID_SPEC') expect(e.stage).toBe('stage')
    }
    expect(() => native.debugError('ERR_NOPE')).toThrow()
  })
})
