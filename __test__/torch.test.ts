// The torch backend (@oxinfer/torch, TorchScript on libtorch) through the
// public API: parity with PyTorch's own outputs and with the ONNX twin on
// ONNX Runtime, batching, streams, pipelines and the server on it, and the
// typed errors of bad models, bad inputs, missing GPUs and a missing package.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Graph, Pipeline, type PipelineResult, type Server, serve, Session, Tensor } from '../index.js'
import { fixture, readJson, rejectsWith, root } from './helpers'

const torchFixture = (name: string) => fixture(join('torch', name))
const ref = readJson('torch/reference.json')

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length)
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]), `element ${i}`).toBeLessThanOrEqual(tol)
}

describe('TorchScript models', () => {
  it('give the same outputs as PyTorch and as the ONNX twin on ONNX Runtime', async () => {
    const torch = await Session.create(torchFixture('mlp.pt'))
    const onnx = await Session.create(torchFixture('mlp.onnx'))
    expect(torch.inputs).toEqual([{ name: 'features', type: 'float32', dims: [-1, 32] }])
    expect(torch.outputs).toEqual([{ name: 'logits', type: 'float32', dims: [-1, 10] }])
    expect(torch.metadata.producer).toBe('pytorch')
    const features = new Tensor('float32', Float32Array.from(ref.features), [5, 32])
    const a = (await torch.run({ features })).logits
    const b = (await onnx.run({ features })).logits
    expect(a.dims).toEqual([5, 10])
    close(a.data as Float32Array, ref.logits, 1e-5)
    close(a.data as Float32Array, b.data as Float32Array, 1e-5)
    // From bytes too: a zip archive is read as TorchScript.
    const fromBytes = await Session.create(readFileSync(torchFixture('mlp.pt')))
    close((await fromBytes.run({ features })).logits.data as Float32Array, ref.logits, 1e-5)
    await Promise.all([torch.dispose(), onnx.dispose(), fromBytes.dispose()])
  })

  it('name undeclared inputs after forward, and take declarations as options', async () => {
    const plain = await Session.create(torchFixture('mlp_plain.pt'))
    expect(plain.inputs).toEqual([{ name: 'features', type: 'float32', dims: [] }])
    expect(plain.outputs.map((o) => o.name)).toEqual(['output'])
    // Triton's INPUT__0 convention maps onto forward's arguments by position.
    const triton = await Session.create(torchFixture('mlp_plain.pt'), {
      declare: { inputs: [{ name: 'INPUT__0', type: 'float32', dims: [-1, 32] }], outputs: [{ name: 'OUTPUT__0', type: 'float32' }] },
    })
    expect(triton.inputs.map((i) => i.name)).toEqual(['INPUT__0'])
    const out = await triton.run({ INPUT__0: new Tensor('float32', Float32Array.from(ref.features), [5, 32]) })
    close(out.OUTPUT__0.data as Float32Array, ref.logits, 1e-5)
    await Promise.all([plain.dispose(), triton.dispose()])
  })

  it('carry int64, float16 and bfloat16 tensors and dict outputs', async () => {
    const s = await Session.create(torchFixture('mixed.pt'))
    expect(s.inputs.map((i) => i.type)).toEqual(['int64', 'float16', 'bfloat16'])
    const bf16 = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0] >>> 16
    const out = await s.run({
      ids: new Tensor('int64', BigInt64Array.from([1n, 2n, 3n, 4n, 0n, 0n, 5n, 2n ** 40n]), [2, 4]),
      scale: new Tensor('float16', Uint16Array.from([0x3e00, 0xb400]), [2]), // 1.5, -0.25
      bias: new Tensor('bfloat16', Uint16Array.from([bf16(2), bf16(-3.5)]), [2]),
    })
    expect(Object.keys(out)).toEqual(['total', 'scaled', 'shifted', 'count'])
    expect(Array.from(out.total.data as BigInt64Array)).toEqual([10n, 5n + 2n ** 40n])
    expect(out.scaled.type).toBe('float16')
    expect(Array.from(out.scaled.data as Uint16Array)).toEqual([0x4200, 0xb800]) // 3, -0.5
    expect(out.shifted.type).toBe('bfloat16')
    expect(Array.from(out.shifted.data as Uint16Array)).toEqual([bf16(3), bf16(-2.5)])
    expect(Array.from(out.count.data as Int32Array)).toEqual([4, 2])
    await s.dispose()
  })

  it("never let a model write to the caller's input, and learn undeclared output types", async () => {
    // forward does `x /= 255` in place: inline or queued, the caller's array stays as it was.
    for (const inlineThresholdMicros of [0, 1000]) {
      const s = await Session.create(torchFixture('in_place.pt'), { inlineThresholdMicros })
      const data = Float32Array.from([255, 510, 765])
      for (let k = 0; k < 3; k++) {
        const out = await s.run({ x: new Tensor('float32', data, [3]) })
        expect(Array.from(out.output.data as Float32Array)).toEqual([1, 2, 3])
      }
      expect(Array.from(data)).toEqual([255, 510, 765])
      await s.dispose()
    }
    // Only the input declared: a run on zeros at load shows an int64 label and float32 scores.
    const p = await Session.create(torchFixture('penguins_inputs_only.pt'))
    expect(p.outputs).toEqual([
      { name: 'output__0', type: 'int64', dims: [-1] },
      { name: 'output__1', type: 'float32', dims: [-1, -1] },
    ])
    const out = await p.run({ float_input: new Tensor('float32', new Float32Array(20), [2, 10]) })
    expect(out.output__0.type).toBe('int64')
    await p.dispose()
    // Triton's OUTPUT__<i> names map by index, in whatever order they are listed.
    const g = await Session.create(torchFixture('gru.pt'), { declare: { outputs: [{ name: 'OUTPUT__1', type: 'float32' }, { name: 'OUTPUT__0', type: 'float32' }] } })
    const step = await g.run({ x: new Tensor('float32', Float32Array.from((ref.frames as number[]).slice(0, 24)), [3, 8]), state: new Tensor('float32', new Float32Array(48), [3, 16]) })
    close(step.OUTPUT__0.data as Float32Array, ref.scores[0], 1e-5)
    expect(step.OUTPUT__1.dims).toEqual([3, 16])
    await g.dispose()
  })

  it('batch concurrent runs into merged forwards, each caller getting its rows', async () => {
    const s = await Session.create(torchFixture('mlp.pt'), { inlineThresholdMicros: 0, batching: { maxBatchSize: 64 } })
    const plain = await Session.create(torchFixture('mlp.pt'), { inlineThresholdMicros: 0 })
    const rows = Array.from({ length: 200 }, (_, r) => Float32Array.from({ length: 32 }, (_, k) => Math.sin(r * 32 + k)))
    const timings: number[] = []
    const got = await Promise.all(rows.map((x) => s.run({ features: new Tensor('float32', x, [1, 32]) }, { onTiming: (t) => timings.push(t.batchRequests) })))
    const want = await Promise.all(rows.map((x) => plain.run({ features: new Tensor('float32', x, [1, 32]) })))
    got.forEach((g, i) => close(g.logits.data as Float32Array, want[i].logits.data as Float32Array, 1e-5))
    expect(Math.max(...timings)).toBeGreaterThan(1)
    await Promise.all([s.dispose(), plain.dispose()])
  })

  it('stream a recurrent model, its state kept natively between calls', async () => {
    const s = await Session.create(torchFixture('gru.pt'))
    const st = s.stream({ state: { next_state: 'state' }, initialState: { state: new Tensor('float32', new Float32Array(3 * 16), [3, 16]) } })
    const frames = ref.frames as number[]
    for (let t = 0; t < 4; t++) {
      const out = await st.run({ x: new Tensor('float32', Float32Array.from(frames.slice(t * 24, (t + 1) * 24)), [3, 8]) })
      close(out.score.data as Float32Array, ref.scores[t], 1e-5)
    }
    await st.close()
    await s.dispose()
  })

  it('run a pipeline: the penguins spec on a TorchScript twin of its scikit-learn model', async () => {
    const dir = fixture('penguins')
    const spec = JSON.parse(readFileSync(join(dir, 'pipeline.json'), 'utf8'))
    const p = await Pipeline.create({ ...spec, model: torchFixture('penguins.pt') }, { baseDir: dir })
    const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
    const want = readJson('penguins/reference.json')
    const out = (await p.runBatch(records)) as PipelineResult[]
    out.forEach((r, i) => {
      expect(r.label, `row ${i}`).toBe(want.predict[i])
      ;(want.predict_proba[i] as number[]).forEach((q, j) => expect(Math.abs(r.scores[j] - q)).toBeLessThan(1e-5))
    })
    await p.dispose()
  })

  it('run as graph nodes: a TorchScript model beside its ONNX twin', async () => {
    const g = await Graph.create(
      {
        version: 1,
        inputs: { features: { type: 'float32', shape: [-1, 32] } },
        nodes: [
          { name: 'torch', kind: 'model', model: torchFixture('mlp.pt'), inputs: { features: 'features' } },
          { name: 'onnx', kind: 'model', model: torchFixture('mlp.onnx'), inputs: { features: 'features' } },
          { name: 'gap', kind: 'op', op: 'sub', inputs: ['torch.logits', 'onnx.logits'] },
        ],
        outputs: { logits: 'torch.logits', gap: 'gap.y' },
      },
      {},
    )
    const out = await g.run({ features: new Tensor('float32', Float32Array.from(ref.features), [5, 32]) })
    close(out.logits.data as Float32Array, ref.logits, 1e-5)
    for (const d of out.gap.data as Float32Array) expect(Math.abs(d)).toBeLessThan(1e-5)
    await g.dispose()
  })

  it('refuse bad models, inputs and devices with typed errors', async () => {
    await rejectsWith(Session.create(torchFixture('weights_only.pt')), 'ERR_MODEL_LOAD')
    const bytes = readFileSync(torchFixture('mlp.pt'))
    await rejectsWith(Session.create(bytes.subarray(0, bytes.length / 2)), 'ERR_MODEL_LOAD')
    await rejectsWith(Session.create(Buffer.from('PK\x03\x04 not really a zip')), 'ERR_MODEL_LOAD')
    await rejectsWith(Session.create(torchFixture('missing.pt')), 'ERR_FILE')
    const gpu = await rejectsWith(Session.create(torchFixture('mlp.pt'), { device: 'cuda' }), 'ERR_UNSUPPORTED')
    expect(gpu.message).toMatch(/cuda/)
    await rejectsWith(Session.create(torchFixture('mlp.onnx'), { declare: { inputs: [] } }), 'ERR_INVALID_ARGUMENT')
    // ONNX Runtime's CUDA arena limit: not on the CPU, not for libtorch; ONNX Runtime without CUDA says so.
    await rejectsWith(Session.create(torchFixture('mlp.onnx'), { gpuMemoryLimit: 1 << 30 }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(torchFixture('mlp.pt'), { device: 'cuda', gpuMemoryLimit: 1 << 30 }), 'ERR_INVALID_ARGUMENT')
    expect((await rejectsWith(Session.create(torchFixture('mlp.onnx'), { device: 'cuda:0', gpuMemoryLimit: 1 << 30 }), 'ERR_UNSUPPORTED')).message).toMatch(/CUDA/)
    await rejectsWith(Session.create(torchFixture('mlp.pt'), { declare: { inputs: [{ name: 'nope' }] } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(torchFixture('mlp.pt'), { declare: { inputs: [{ name: 'features', type: 'string' as never }] } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Session.create(torchFixture('mlp.pt'), { backend: 'tf' as never }), 'ERR_INVALID_ARGUMENT')
    // An ONNX file forced onto the torch backend is not TorchScript.
    await rejectsWith(Session.create(torchFixture('mlp.onnx'), { backend: 'torch' }), 'ERR_MODEL_LOAD')

    const s = await Session.create(torchFixture('mlp.pt'))
    await rejectsWith(s.run({ features: new Tensor('int32', new Int32Array(32), [1, 32]) }), 'ERR_INVALID_INPUT')
    await rejectsWith(s.run({ features: new Tensor('float32', new Float32Array(6), [2, 3]) }), 'ERR_INVALID_INPUT')
    const plain = await Session.create(torchFixture('mlp_plain.pt'))
    const e = await rejectsWith(plain.run({ features: new Tensor('float32', new Float32Array(6), [2, 3]) }), 'ERR_INVALID_INPUT')
    expect(e.message).toMatch(/mat1 and mat2 shapes cannot be multiplied/)
    // The session still serves after every refusal.
    close((await s.run({ features: new Tensor('float32', Float32Array.from(ref.features), [5, 32]) })).logits.data as Float32Array, ref.logits, 1e-5)
    await Promise.all([s.dispose(), plain.dispose()])
  })

  it('say how to install the torch package when it is missing', () => {
    // A child process in which @oxinfer/torch cannot be resolved.
    const hide = join(mkdtempSync(join(tmpdir(), 'oxinfer-hide-')), 'hide.cjs')
    writeFileSync(hide, `const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (req, ...a) { if (req.startsWith('@oxinfer/torch')) { const e = new Error('Cannot find module ' + req); e.code = 'MODULE_NOT_FOUND'; throw e } return r.call(this, req, ...a) }`)
    const script = `require(${JSON.stringify(join(root, 'index.js'))}).Session.create(${JSON.stringify(torchFixture('mlp.pt'))}).then(() => console.log('loaded'), (e) => console.log(e.code + ' ' + e.message))`
    const out = execFileSync(process.execPath, ['-r', hide, '-e', script], { encoding: 'utf8' })
    expect(out).toMatch(/^ERR_UNSUPPORTED /)
    expect(out).toMatch(/npm install @oxinfer\/torch/)
    // And libtorch missing: every place searched is named.
    const none = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, OXINFER_LIBTORCH: '/nonexistent/libtorch' } })
    expect(none).toMatch(/^ERR_UNSUPPORTED .*\/nonexistent\/libtorch \(no lib\/libtorch_cpu.so\)/)
  })
})

describe('TorchScript models in the server', () => {
  let server: Server
  let url: string
  beforeAll(async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-torch-repo-'))
    mkdirSync(join(repo, 'mlp', '1'), { recursive: true })
    copyFileSync(torchFixture('mlp.pt'), join(repo, 'mlp', '1', 'model.pt'))
    // Triton's own configuration for its PyTorch backend.
    writeFileSync(
      join(repo, 'mlp', 'config.pbtxt'),
      `platform: "pytorch_libtorch"\nmax_batch_size: 64\ninput [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 32 ] } ]\noutput [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] } ]\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n`,
    )
    server = await serve({ repository: repo, port: 0 })
    url = server.address!.url
  })
  afterAll(async () => {
    await server?.close()
  })

  it('serves model.pt over KServe v2, batching concurrent requests', async () => {
    const meta = await (await fetch(`${url}/v2/models/mlp`)).json()
    expect(meta.platform).toBe('pytorch_libtorch')
    expect(meta.inputs).toEqual([{ name: 'INPUT__0', datatype: 'FP32', shape: [-1, 32] }])
    const features = ref.features as number[]
    const infer = (row: number) =>
      fetch(`${url}/v2/models/mlp/infer`, {
        method: 'POST',
        body: JSON.stringify({ id: `r${row}`, inputs: [{ name: 'INPUT__0', datatype: 'FP32', shape: [1, 32], data: features.slice(row * 32, row * 32 + 32) }] }),
      }).then((r) => r.json())
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => infer(i % 5)))
    answers.forEach((a, i) => {
      expect(a.id).toBe(`r${i % 5}`)
      close(a.outputs[0].data, (ref.logits as number[]).slice((i % 5) * 10, (i % 5) * 10 + 10), 1e-5)
    })
    const stats = await (await fetch(`${url}/v2/models/mlp/stats`)).json()
    const s = stats.model_stats[0]
    expect(s.inference_count).toBe(50)
    expect(s.execution_count).toBeLessThan(50)
    // A bad request is a 400 and the model keeps serving.
    const bad = await fetch(`${url}/v2/models/mlp/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'INPUT__0', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }) })
    expect(bad.status).toBe(400)
    expect((await infer(0)).outputs[0].shape).toEqual([1, 10])
  })
})
