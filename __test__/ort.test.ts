// oxinfer as an onnxruntime-common backend (issue #19): onnxruntime-common's
// documented InferenceSession/Tensor behaviour, through `oxinfer/ort` (ESM
// here, CommonJS in a child process), compared with onnxruntime-node's own
// backend in the same process; and what is refused on purpose, with its error.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import * as ort from '../src/ort/index.mjs'
import { sessionOptions } from '../src/ort/backend'
import { fixture, root } from './helpers'

const require = createRequire(join(root, 'package.json'))
// onnxruntime-node's backend object, to compare with in the same process (not through the registry, where oxinfer wins).
const { onnxruntimeBackend } = require('onnxruntime-node/dist/backend') as { onnxruntimeBackend: { createInferenceSessionHandler(m: string, o: object): Promise<any> } }

const tiny = fixture('tiny_mlp.onnx')
const allTypes = fixture('all_types.onnx')

/** A feed of every type all_types.onnx takes, 2×3. */
function allTypeFeeds(): Record<string, ort.Tensor> {
  const dims = [2, 3]
  const n = 6
  const f = (t: ort.Tensor.Type, data: any) => new ort.Tensor(t, data, dims)
  return {
    in_float32: f('float32', Float32Array.from({ length: n }, (_, i) => i / 3)),
    in_float64: f('float64', Float64Array.from({ length: n }, (_, i) => Math.PI * i)),
    in_float16: f('float16', Uint16Array.from({ length: n }, (_, i) => 0x3c00 + i)),
    in_int8: f('int8', Int8Array.from({ length: n }, (_, i) => i - 3)),
    in_uint8: f('uint8', Uint8Array.from({ length: n }, (_, i) => 250 + i)),
    in_int16: f('int16', Int16Array.from({ length: n }, (_, i) => -30000 + i)),
    in_uint16: f('uint16', Uint16Array.from({ length: n }, (_, i) => 65530 + i)),
    in_int32: f('int32', Int32Array.from({ length: n }, (_, i) => -2e9 + i)),
    in_uint32: f('uint32', Uint32Array.from({ length: n }, (_, i) => 4e9 + i)),
    in_int64: f('int64', BigInt64Array.from({ length: n }, (_, i) => -(2n ** 62n) + BigInt(i))),
    in_uint64: f('uint64', BigUint64Array.from({ length: n }, (_, i) => 2n ** 63n + BigInt(i))),
    in_bool: f('bool', Uint8Array.from({ length: n }, (_, i) => i % 2)),
    in_string: f('string', ['a', 'bé', '', 'ß'.repeat(40), '日本', 'z']),
  }
}

describe('oxinfer/ort (onnxruntime-common backend)', () => {
  it('creates sessions from a path, a Buffer, a Uint8Array with an offset and an ArrayBuffer range, with names and metadata as onnxruntime-node gives them', async () => {
    const bytes = readFileSync(tiny)
    const padded = new Uint8Array(bytes.length + 11)
    padded.set(bytes, 7)
    const reference = await onnxruntimeBackend.createInferenceSessionHandler(tiny, {})
    for (const s of [
      await ort.InferenceSession.create(tiny),
      await ort.InferenceSession.create(bytes),
      await ort.InferenceSession.create(padded.subarray(7, 7 + bytes.length)),
      await ort.InferenceSession.create(padded.buffer, 7, bytes.length),
    ]) {
      expect(s.inputNames).toEqual(reference.inputNames)
      expect(s.outputNames).toEqual(reference.outputNames)
      expect(s.inputMetadata).toEqual(reference.inputMetadata)
      expect(s.outputMetadata).toEqual(reference.outputMetadata)
      const x = new ort.Tensor('float32', Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)), [2, 16])
      const got = (await s.run({ x })).y
      const want = (await reference.run({ x }, { y: null }, {})).y
      expect(got.data).toBeInstanceOf(Float32Array)
      expect(got.type).toBe('float32')
      expect(got.dims).toEqual([2, 2])
      expect(got.size).toBe(4)
      for (let i = 0; i < 4; i++) expect(Math.abs((got.data as Float32Array)[i] - want.data[i])).toBeLessThan(1e-6)
      await s.release()
    }
    await reference.dispose()
    const allMeta = (await ort.InferenceSession.create(allTypes)).inputMetadata
    const allRef = await onnxruntimeBackend.createInferenceSessionHandler(allTypes, {})
    expect(allMeta).toEqual(allRef.inputMetadata)
  })

  it('runs every tensor type, string and bool included, as onnxruntime-node does', async () => {
    const s = await ort.InferenceSession.create(allTypes)
    const reference = await onnxruntimeBackend.createInferenceSessionHandler(allTypes, {})
    const feeds = allTypeFeeds()
    const got = await s.run(feeds)
    const want = await reference.run(feeds, Object.fromEntries(reference.outputNames.map((n: string) => [n, null])), {})
    expect(Object.keys(got).sort()).toEqual([...s.outputNames].sort())
    for (const name of s.outputNames) {
      const t = name.slice('out_'.length)
      expect(got[name].type, name).toBe(t)
      expect(got[name].dims).toEqual([2, 3])
      expect(Array.from(got[name].data as ArrayLike<unknown>), name).toEqual(Array.from(want[name].data as ArrayLike<unknown>))
      expect(Array.from(got[name].data as ArrayLike<unknown>), name).toEqual(Array.from(feeds[`in_${t}`].data as ArrayLike<unknown>))
    }
    // An output-name list: only those outputs.
    const some = await s.run(feeds, ['out_int8', 'out_string'])
    expect(Object.keys(some).sort()).toEqual(['out_int8', 'out_string'])
    await s.release()
    await reference.dispose()
  })

  it('fills pre-allocated output tensors (fetches) and refuses ones of the wrong shape or type', async () => {
    const s = await ort.InferenceSession.create(tiny)
    const x = new ort.Tensor('float32', new Float32Array(16).fill(0.25), [1, 16])
    const y = new ort.Tensor('float32', new Float32Array(2), [1, 2])
    const r = await s.run({ x }, { y })
    expect(r.y).toBe(y)
    const plain = (await s.run({ x })).y
    expect(Array.from(y.data as Float32Array)).toEqual(Array.from(plain.data as Float32Array))
    await expect(s.run({ x }, { y: new ort.Tensor('float32', new Float32Array(4), [2, 2]) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/output 'y' is float32 \[1, 2\], but the tensor given for it is float32 \[2, 2\]/) })
    await expect(s.run({ x }, { y: new ort.Tensor('int32', new Int32Array(2), [1, 2]) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    // Released: runs are refused.
    await s.release()
    await expect(s.run({ x })).rejects.toMatchObject({ code: 'ERR_DISPOSED' })
  })

  it('maps the session options it can and refuses the rest by name', async () => {
    const ok = await ort.InferenceSession.create(tiny, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'basic', executionProviders: ['cpu'], logSeverityLevel: 3, logId: 'tiny', enableProfiling: false, executionMode: 'sequential', extra: { poolSize: 2, batching: { maxBatchSize: 32 } } })
    const x = new ort.Tensor('float32', new Float32Array(16), [1, 16])
    // Concurrent calls through the batching option all complete.
    const many = await Promise.all(Array.from({ length: 64 }, () => ok.run({ x })))
    expect(many.every((r) => r.y.dims[0] === 1)).toBe(true)
    // Extra feed keys are ignored, as onnxruntime-node ignores them.
    expect((await ok.run({ x, unused: x })).y.dims).toEqual([1, 2])
    await ok.release()
    // Parallel mode takes the inter-op threads; a debug log level is taken with a warning (the level is the process's).
    const parallel = await ort.InferenceSession.create(tiny, { executionMode: 'parallel', interOpNumThreads: 2, logSeverityLevel: 0 })
    expect((await parallel.run({ x })).y.dims).toEqual([1, 2])
    await parallel.release()
    for (const bad of [{ logSeverityLevel: 7 }, { logSeverityLevel: 2.5 }, { logId: 5 }, { executionMode: 'fast' }]) {
      await expect(ort.InferenceSession.create(tiny, bad as never), JSON.stringify(bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    const refusals: [object, RegExp][] = [
      [{ graphOptimizationLevel: 'layout' }, /graphOptimizationLevel "layout" is not one oxinfer has/],
      [{ enableProfiling: true }, /enableProfiling: true is not supported/],
      [{ freeDimensionOverrides: { batch: 1 } }, /session option 'freeDimensionOverrides' has no equivalent/],
      [{ executionProviders: [{ name: 'cpu', useArena: false }] }, /the cpu execution provider's options \(useArena\) are not supported/],
      [{ extra: { 'session.use_env_allocators': '1' } }, /extra option 'session\.use_env_allocators' is not one oxinfer reads/],
      [{ extra: { session: { intra_op: { allow_spinning: '1' } }, 'session.inter_op.allow_spinning': '0' } }, /with different values cannot be given/],
      [{ enableCpuMemArena: false }, /enableCpuMemArena: false is not supported/],
    ]
    for (const [options, message] of refusals) await expect(ort.InferenceSession.create(tiny, options as never), JSON.stringify(options)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(message) })
    // ONNX Runtime's spinning entries map to intraOpSpinning, nested (as onnxruntime-node flattens them) or dotted.
    expect(sessionOptions({ extra: { session: { intra_op: { allow_spinning: '1' } }, poolSize: 1 } })).toEqual({ intraOpSpinning: true, poolSize: 1 })
    expect(sessionOptions({ extra: { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' } })).toEqual({ intraOpSpinning: false })
    await expect(ort.InferenceSession.create(tiny, { extra: { 'session.intra_op.allow_spinning': 'yes' } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    await expect(ort.InferenceSession.create(tiny, { extra: cycle as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/nests deeper/) })
    const spinning = await ort.InferenceSession.create(tiny, { intraOpNumThreads: 2, extra: { poolSize: 1, session: { intra_op: { allow_spinning: '1' } } } })
    expect((await spinning.run({ x })).y.dims).toEqual([1, 2])
    await spinning.release()
    // A provider oxinfer does not register is not resolved to it: onnxruntime-common reports no backend.
    await expect(ort.InferenceSession.create(tiny, { executionProviders: ['webgpu'] })).rejects.toThrow(/no available backend found/)
  })

  it('honours run options: terminate ends the run, tag is accepted, bad log levels and extras are refused', async () => {
    const s = await ort.InferenceSession.create(tiny)
    const x = new ort.Tensor('float32', new Float32Array(16), [1, 16])
    await expect(s.run({ x }, { terminate: true, tag: 'req-7' })).rejects.toMatchObject({ code: 'ERR_ABORTED', message: expect.stringMatching(/terminated \(runOptions\.terminate\) \(run 'req-7'\)/) })
    expect((await s.run({ x }, { tag: 'req-8', terminate: false })).y.dims).toEqual([1, 2])
    await expect(s.run({ x }, { logSeverityLevel: 9 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(s.run({ x }, { extra: { 'memory.enable_memory_arena_shrinkage': '1' } })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    // Bad feeds get oxinfer's typed errors.
    await expect(s.run({ x: new ort.Tensor('float32', new Float32Array(15), [1, 15]) })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    // onnxruntime-common's OnnxValue is a Tensor. As onnxruntime-node does, sequences and maps (scikit-learn's ZipMap)
    // are refused by name, and an optional comes back when it holds a tensor, refused when empty.
    const zip = await ort.InferenceSession.create(fixture('zipmap.onnx'))
    expect(zip.outputMetadata.find((m) => m.name === 'output_probability')).toEqual({ name: 'output_probability', isTensor: false })
    await expect(zip.run({ float_input: new ort.Tensor('float32', new Float32Array(4), [1, 4]) })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/output 'output_probability' is a sequence, not a tensor/) })
    expect((await zip.run({ float_input: new ort.Tensor('float32', new Float32Array(4), [1, 4]) }, ['output_label'])).output_label.type).toBe('int64')
    const opt = await ort.InferenceSession.create(fixture('optional.onnx'))
    const x2 = new ort.Tensor('float32', Float32Array.from([1, 2]), [2])
    await expect(opt.run({ x: x2 })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/output 'none' is an empty optional, not a tensor/) })
    const filled = await opt.run({ x: x2 }, ['y', 'some'])
    expect(filled.some).toBeInstanceOf(ort.Tensor)
    expect([filled.some.type, filled.some.dims, Array.from(filled.some.data as Float32Array)]).toEqual(['float32', [2], [1, 2]])
    expect(Array.from(filled.y.data as Float32Array)).toEqual([1, 2])
    await Promise.all([s.release(), zip.release(), opt.release()])
  })

  it('from CommonJS: oxinfer/ort has onnxruntime-node\'s shape, and oxinfer/register, imported first, wins over onnxruntime-node for cpu', () => {
    const script = `
      require('oxinfer/register')
      const ortNode = require('onnxruntime-node')
      const { InferenceSession, Tensor, env, listSupportedBackends } = require('oxinfer/ort')
      ;(async () => {
        const s = await ortNode.InferenceSession.create(${JSON.stringify(tiny)})
        const r = await s.run({ x: new ortNode.Tensor('float32', new Float32Array(16).fill(1), [1, 16]) })
        const t = await InferenceSession.create(${JSON.stringify(tiny)})
        console.log(JSON.stringify({ handler: s.handler.constructor.name, dims: r.y.dims, same: InferenceSession === ortNode.InferenceSession, tensor: Tensor === ortNode.Tensor, oxinfer: env.versions.oxinfer, backends: listSupportedBackends(), other: t.handler.constructor.name }))
      })().catch((e) => { console.error(e); process.exit(1) })`
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()!)
    expect(out).toEqual({ handler: 'OxinferSessionHandler', dims: [1, 2], same: true, tensor: true, oxinfer: expect.stringMatching(/^\d+\.\d+\.\d+/), backends: [{ name: 'cpu', bundled: true }], other: 'OxinferSessionHandler' })
    // oxinfer/register imported after onnxruntime-node would silently lose 'cpu': it refuses instead.
    const late = (() => {
      try {
        execFileSync(process.execPath, ['-e', "require('onnxruntime-node'); require('oxinfer/register')"], { cwd: root, encoding: 'utf8', stdio: 'pipe' })
        return ''
      } catch (e) {
        return String((e as { stderr: string }).stderr)
      }
    })()
    expect(late).toMatch(/ERR_UNSUPPORTED[\s\S]*import oxinfer\/register first, before onnxruntime-node/)
    // oxinfer/ort after onnxruntime-node warns, and the 'oxinfer' provider still names it.
    const named = `
      const ortNode = require('onnxruntime-node')
      const { InferenceSession } = require('oxinfer/ort')
      ;(async () => {
        const a = await InferenceSession.create(${JSON.stringify(tiny)}, { executionProviders: ['cpu'] })
        const b = await InferenceSession.create(${JSON.stringify(tiny)}, { executionProviders: ['oxinfer'] })
        const c = await InferenceSession.create(${JSON.stringify(tiny)})
        console.log(JSON.stringify([a.handler.constructor.name, b.handler.constructor.name, c.handler.constructor.name]))
      })().catch((e) => { console.error(e); process.exit(1) })`
    const r = spawnSync(process.execPath, ['-e', named], { cwd: root, encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    // 'cpu' stays onnxruntime-node's; 'oxinfer', and no provider at all (the highest priority), are oxinfer.
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual(['OnnxruntimeSessionHandler', 'OxinferSessionHandler', 'OxinferSessionHandler'])
    expect(r.stderr).toMatch(/OXINFER_ORT_LATE[\s\S]*executionProviders: \['oxinfer'\]/)
  })

  it('from ESM, oxinfer/register reaches the ESM copy of onnxruntime-common too', () => {
    const script = `
      import 'oxinfer/register'
      import { InferenceSession, Tensor } from 'onnxruntime-common'
      const s = await InferenceSession.create(${JSON.stringify(tiny)})
      const r = await s.run({ x: new Tensor('float32', new Float32Array(16), [1, 16]) })
      console.log(JSON.stringify([s.handler.constructor.name, r.y.dims]))`
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual(['OxinferSessionHandler', [1, 2]])
  })
})
