// The native KServe v2 server, started for real on a loopback port and
// driven over HTTP: every route, JSON and binary tensors, BYTES and FP16,
// versions, load/unload and poll reload, pipelines, errors as 4xx JSON,
// concurrency without crossed responses, merging with in-process calls,
// auth, limits, overload and a graceful close that loses nothing.
import { cpSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { serve, Session, Tensor, type Server } from '../index.js'
import { fixture, penguinTensors, readJson, readWav, rejectsWith } from './helpers'
import { binaryRequest, readBinaryResponse } from './server-helpers'
// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'

function repository(): string {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
  cpSync(ensureExampleRepository(), dir, { recursive: true })
  return dir
}

const x16 = (seed: number): number[] => Array.from({ length: 16 }, (_, i) => Math.sin(seed * 16 + i))

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
}

async function expectError(r: Response, status: number, pattern?: RegExp): Promise<string> {
  expect(r.status).toBe(status)
  expect(r.headers.get('content-type')).toMatch(/json/)
  const body = (await r.json()) as { error: string }
  expect(typeof body.error).toBe('string')
  if (pattern) expect(body.error).toMatch(pattern)
  return body.error
}

const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
const ref = readJson('penguins/reference.json')

describe('the KServe v2 server', () => {
  let server: Server
  let url: string
  let repo: string
  let local: Session

  beforeAll(async () => {
    repo = repository()
    server = await serve({ repository: repo, port: 0 })
    url = server.address!.url
    local = await Session.create(fixture('tiny_mlp.onnx'))
  })
  afterAll(async () => {
    await server?.close()
    await local?.dispose()
    rmSync(repo, { recursive: true, force: true })
  })

  it('answers the server routes: metadata, live and ready', async () => {
    expect(server.failures).toEqual([])
    const meta = await (await fetch(`${url}/v2`)).json()
    expect(meta).toMatchObject({ name: 'oxinfer', extensions: expect.arrayContaining(['binary_tensor_data', 'model_repository', 'statistics']) })
    expect((await fetch(`${url}/v2/health/live`)).status).toBe(200)
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200)
    await expectError(await fetch(`${url}/v2/nowhere`), 404)
  })

  it('describes a model as Triton does: metadata, readiness and configuration', async () => {
    const m = await (await fetch(`${url}/v2/models/tiny_mlp`)).json()
    expect(m).toEqual({
      name: 'tiny_mlp',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 16] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    })
    expect((await fetch(`${url}/v2/models/tiny_mlp/ready`)).status).toBe(200)
    expect((await fetch(`${url}/v2/models/tiny_mlp/versions/1/ready`)).status).toBe(200)
    await expectError(await fetch(`${url}/v2/models/tiny_mlp/versions/7/ready`), 404, /version 7/)
    await expectError(await fetch(`${url}/v2/models/nope`), 404, /nope/)
    const c = await (await fetch(`${url}/v2/models/tiny_mlp/config`)).json()
    expect(c).toMatchObject({ name: 'tiny_mlp', max_batch_size: 64, input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [16] }], output: [{ name: 'y', data_type: 'TYPE_FP32', dims: [2] }] })
    expect(c.dynamic_batching).toMatchObject({ max_queue_delay_microseconds: 100 })
  })

  it('infers with JSON tensors, echoing the id, with the in-process result', async () => {
    const r = await post(`${url}/v2/models/tiny_mlp/infer`, { id: 'abc-1', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: [x16(1), x16(2)] }] })
    expect(r.status).toBe(200)
    const body = await r.json()
    const want = await local.run({ x: new Tensor('float32', Float32Array.from([...x16(1), ...x16(2)]), [2, 16]) })
    expect(body).toMatchObject({ model_name: 'tiny_mlp', model_version: '1', id: 'abc-1', outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 2] }] })
    const got = body.outputs[0].data as number[]
    Array.from(want.y.data as Float32Array).forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5))
    // The versioned route and an explicit output list agree.
    const v1 = await (await post(`${url}/v2/models/tiny_mlp/versions/1/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: [...x16(1), ...x16(2)] }], outputs: [{ name: 'y' }] })).json()
    expect(v1.outputs[0].data).toEqual(got)
    expect(v1.id).toBeUndefined()
  })

  it('infers with the binary tensor data extension, per output and by default', async () => {
    const x = Float32Array.from([...x16(3), ...x16(4)])
    const want = (await local.run({ x: new Tensor('float32', x, [2, 16]) })).y.data as Float32Array
    const { body, headerLength } = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: x }], parameters: { binary_data_output: true } })
    const r = await post(`${url}/v2/models/tiny_mlp/infer`, body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) })
    expect(r.status).toBe(200)
    const res = await readBinaryResponse(r)
    expect(res.header.outputs[0]).toMatchObject({ name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } })
    expect(Array.from(new Float32Array(res.tensors.y.buffer, res.tensors.y.byteOffset, 4))).toEqual(Array.from(want))
    // A per-output flag overrides the request's default: JSON back.
    const { body: b2, headerLength: h2 } = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: x }], parameters: { binary_data_output: true }, outputs: [{ name: 'y', parameters: { binary_data: false } }] })
    const r2 = await post(`${url}/v2/models/tiny_mlp/infer`, b2, { 'inference-header-content-length': String(h2) })
    expect(r2.headers.get('inference-header-content-length')).toBeNull()
    const j2 = await r2.json()
    j2.outputs[0].data.forEach((v: number, i: number) => expect(v).toBeCloseTo(want[i], 5))
  })

  it('serves a pipeline: record fields in, labels and scores out, as in-process', async () => {
    const rows = records.slice(0, 40)
    // Missing numbers as bare NaN tokens, as Python's json writes them (JSON.stringify cannot).
    const r = await post(`${url}/v2/models/penguins/infer`, JSON.stringify({ inputs: penguinTensors(rows) }).replaceAll('"NaN"', 'NaN'))
    expect(r.status).toBe(200)
    const body = await r.json()
    const out = Object.fromEntries(body.outputs.map((o: { name: string }) => [o.name, o]))
    expect(out.label).toMatchObject({ datatype: 'BYTES', shape: [40] })
    expect(out.scores).toMatchObject({ datatype: 'FP32', shape: [40, 3] })
    expect(out.label.data).toEqual((ref.predict as string[]).slice(0, 40))
    rows.forEach((_, i) => (ref.predict_proba[i] as number[]).forEach((p, j) => expect(Math.abs(out.scores.data[i * 3 + j] - p)).toBeLessThan(1e-5)))
    const meta = await (await fetch(`${url}/v2/models/penguins`)).json()
    expect(meta.platform).toBe('oxinfer_pipeline')
    expect(meta.inputs.map((i: { name: string }) => i.name)).toEqual(['island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex'])
    expect(meta.outputs.map((o: { name: string }) => o.name)).toEqual(expect.arrayContaining(['scores', 'label', 'label_index', 'score']))
    // Only the outputs asked for, in that order.
    const some = await (await post(`${url}/v2/models/penguins/infer`, JSON.stringify({ inputs: penguinTensors(rows.slice(0, 2)), outputs: [{ name: 'score' }, { name: 'label' }] }).replaceAll('"NaN"', 'NaN'))).json()
    expect(some.outputs.map((o: { name: string }) => o.name)).toEqual(['score', 'label'])
    // A bad record is a 400 naming the field.
    const bad = penguinTensors(rows.slice(0, 2))
    bad[0] = { name: 'island', datatype: 'FP64', shape: [2], data: [1, 2] } as never
    await expectError(await post(`${url}/v2/models/penguins/infer`, JSON.stringify({ inputs: bad }).replaceAll('"NaN"', 'NaN')), 400, /island/)
    await expectError(await post(`${url}/v2/models/penguins/infer`, JSON.stringify({ inputs: [...penguinTensors(rows.slice(0, 2)), { name: 'beak', datatype: 'FP64', shape: [2], data: [1, 2] }] }).replaceAll('"NaN"', 'NaN')), 400, /beak/)
    // A number spelt as a string is refused, naming the input.
    await expectError(await post(`${url}/v2/models/penguins/infer`, { inputs: penguinTensors(rows.slice(2, 4)) }), 400, /bill_length_mm|bill_depth_mm|flipper_length_mm|body_mass_g/)
  })

  it('answers malformed requests with a 4xx and error JSON, and keeps serving', async () => {
    const infer = `${url}/v2/models/tiny_mlp/infer`
    await expectError(await post(infer, '{"inputs": [', {}), 400)
    await expectError(await post(infer, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: [1, 2, 3] }] }), 400, /x/)
    await expectError(await post(infer, { inputs: [{ name: 'x', datatype: 'FP99', shape: [1, 16], data: x16(0) }] }), 400, /FP99/)
    await expectError(await post(infer, { inputs: [{ name: 'x', datatype: 'FP32', shape: [2 ** 40, 2 ** 40], data: [1] }] }), 400)
    await expectError(await post(infer, { inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 16], data: x16(0).map(Math.round) }] }), 400, /x/)
    await expectError(await post(infer, { inputs: [{ name: 'z', datatype: 'FP32', shape: [1, 16], data: x16(0) }] }), 400, /z/)
    // Binary header lengths that lie.
    const { body } = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: Float32Array.from(x16(0)) }] })
    await expectError(await post(infer, body, { 'inference-header-content-length': String(body.length + 10) }), 400)
    await expectError(await post(infer, body, { 'inference-header-content-length': '12' }), 400)
    await expectError(await post(infer, body, { 'inference-header-content-length': 'many' }), 400)
    // Names that try to leave the repository.
    for (const name of ['..%2F..%2Fetc', '%2E%2E', 'a%2Fb', '.hidden%00']) {
      const r = await post(`${url}/v2/models/${name}/infer`, { inputs: [] })
      expect([400, 404]).toContain(r.status)
      await expectError(r, r.status)
    }
    await expectError(await post(`${url}/v2/repository/models/..%2F..%2Ftmp/load`, {}), 400)
    // Still serving.
    expect((await post(infer, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
  })

  it('serves 600 concurrent requests with no lost or crossed responses', async () => {
    const n = 600
    const bodies = Array.from({ length: n }, (_, i) => ({ id: `r${i}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(i) }] }))
    const want = await Promise.all(bodies.map((_, i) => local.run({ x: new Tensor('float32', Float32Array.from(x16(i)), [1, 16]) })))
    const got = await Promise.all(bodies.map(async (b) => (await post(`${url}/v2/models/tiny_mlp/infer`, b)).json()))
    got.forEach((g, i) => {
      expect(g.id).toBe(`r${i}`)
      const w = want[i].y.data as Float32Array
      expect(g.outputs[0].data[0]).toBeCloseTo(w[0], 5)
      expect(g.outputs[0].data[1]).toBeCloseTo(w[1], 5)
    })
  })

  it('merges HTTP requests with in-process runs of the served model into batches', async () => {
    const before = server.stats().model_stats.find((s) => s.name === 'tiny_mlp')!
    const s = server.session('tiny_mlp')
    const n = 300
    const http = Array.from({ length: n }, (_, i) => post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(i) }] }))
    const inproc = Array.from({ length: n }, (_, i) => s.run({ x: new Tensor('float32', Float32Array.from(x16(i)), [1, 16]) }))
    const [h, p] = await Promise.all([Promise.all(http), Promise.all(inproc)])
    expect(h.every((r) => r.status === 200)).toBe(true)
    for (let i = 0; i < n; i++) {
      const j = await h[i].json()
      expect(j.outputs[0].data[0]).toBeCloseTo((p[i].y.data as Float32Array)[0], 5)
    }
    const after = server.stats().model_stats.find((s) => s.name === 'tiny_mlp')!
    const executions = after.execution_count - before.execution_count
    expect(after.inference_stats.success.count - before.inference_stats.success.count).toBe(n)
    // 600 requests ran in fewer executions: batches were merged.
    expect(executions).toBeLessThan(2 * n)
    expect(executions).toBeGreaterThan(0)
    await s.dispose()
    // Disposing the in-process handle leaves the model served.
    expect((await post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
    const p2 = server.pipeline('penguins')
    const res = await p2.run(records[0])
    expect(res.label).toBe(ref.predict[0])
  })

  it('serves a stateful model through sequence parameters, the state kept natively', async () => {
    const { samples } = readWav(fixture('speech_16k.wav'))
    const chunk = (c: number) => {
      const x = new Float32Array(576)
      x.set(samples.subarray(c * 512, c * 512 + 512), 64)
      if (c > 0) x.set(samples.subarray(c * 512 - 64, c * 512), 0)
      return Array.from(x)
    }
    const step = async (seq: number | string, c: number, p: Record<string, unknown> = {}) =>
      post(`${url}/v2/models/vad/infer`, { parameters: { sequence_id: seq, ...p }, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 576], data: chunk(c) }, { name: 'sr', datatype: 'INT64', shape: [], data: [16000] }] })
    const meta = await (await fetch(`${url}/v2/models/vad`)).json()
    // The state is the server's: neither state nor stateN is shown.
    expect(meta.inputs.map((i: { name: string }) => i.name).sort()).toEqual(['input', 'sr'])
    expect(meta.outputs.map((o: { name: string }) => o.name)).toEqual(['output'])
    // The reference: the same chunks through an in-process stream.
    const vad = await Session.create(join(repo, 'vad', '1', 'model.onnx'))
    const stream = vad.stream({ state: { stateN: 'state' } })
    const want: number[] = []
    for (let c = 0; c < 8; c++) want.push(((await stream.run({ input: new Tensor('float32', Float32Array.from(chunk(c)), [1, 576]), sr: new Tensor('int64', BigInt64Array.from([16000n]), []) })).output.data as Float32Array)[0])
    await stream.close()
    await vad.dispose()
    // Two sequences interleaved, one numbered and one named.
    const got: Record<string, number[]> = { a: [], b: [] }
    for (let c = 0; c < 8; c++) {
      const flags = c === 0 ? { sequence_start: true } : c === 7 ? { sequence_end: true } : {}
      const [ra, rb] = await Promise.all([step(11, c, flags), step('b-1', c, flags)])
      expect(ra.status, await ra.clone().text()).toBe(200)
      got.a.push((await ra.json()).outputs[0].data[0])
      got.b.push((await rb.json()).outputs[0].data[0])
    }
    got.a.forEach((p, i) => expect(p).toBeCloseTo(want[i], 5))
    got.b.forEach((p, i) => expect(p).toBeCloseTo(want[i], 5))
    // Ended: the next step must start again.
    await expectError(await step(11, 0), 400, /not open/)
    await expectError(await post(`${url}/v2/models/vad/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 576], data: chunk(0) }, { name: 'sr', datatype: 'INT64', shape: [], data: [16000] }] }), 400, /sequence_id/)
    await expectError(await step(0, 0, { sequence_start: true }), 400, /sequence_id/)
    await expectError(await post(`${url}/v2/models/tiny_mlp/infer`, { parameters: { sequence_id: 3 }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] }), 400, /not a sequence model/)
    const config = await (await fetch(`${url}/v2/models/vad/config`)).json()
    expect(config.sequence_batching.state).toEqual([{ input_name: 'state', output_name: 'stateN' }])
    // At most max_sequences open at once: one more start is a 503 with Retry-After, until one ends.
    const capped = { ...config, sequence_batching: { ...config.sequence_batching, max_sequences: 2 } }
    expect((await post(`${url}/v2/repository/models/vad/load`, { parameters: { config: JSON.stringify(capped) } })).status).toBe(200)
    expect((await step(1, 0, { sequence_start: true })).status).toBe(200)
    expect((await step(2, 0, { sequence_start: true })).status).toBe(200)
    const full = await step(3, 0, { sequence_start: true })
    expect(full.headers.get('retry-after')).toBe('1')
    await expectError(full, 503, /max_sequences/)
    expect((await step(1, 1, { sequence_end: true })).status).toBe(200)
    expect((await step(3, 0, { sequence_start: true })).status).toBe(200)
    expect((await (await fetch(`${url}/v2/models/vad/config`)).json()).sequence_batching.max_sequences).toBe(2)
  })

  it('reports statistics and Prometheus metrics', async () => {
    const stats = await (await fetch(`${url}/v2/models/tiny_mlp/stats`)).json()
    expect(stats.model_stats[0]).toMatchObject({ name: 'tiny_mlp', version: '1' })
    expect(stats.model_stats[0].inference_stats.success.count).toBeGreaterThan(0)
    expect(stats.model_stats[0].failures.ERR_INVALID_INPUT).toBeGreaterThan(0)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/oxinfer_inference_request_success\{model="tiny_mlp",version="1"\} \d+/)
    expect(metrics).toMatch(/oxinfer_inference_request_failure\{model="tiny_mlp",reason="ERR_INVALID_INPUT",version="1"\} \d+/)
    expect(metrics).toMatch(/oxinfer_inference_queue_duration_us_bucket/)
    expect(metrics).toMatch(/oxinfer_inference_pending_request_count\{model="penguins",version="1"\} 0/)
    expect(metrics).toMatch(/oxinfer_model_ready\{model="vad",version="1"\} 1/)
    expect(metrics).toMatch(/oxinfer_model_ready\{model="tiny_mlp",version="1"\} 1/)
    expect(server.metrics()).toMatch(/oxinfer_inference_exec_count/)
  })

  it('loads and unloads through the repository API, and lists the index', async () => {
    const index = await (await post(`${url}/v2/repository/index`, {})).json()
    expect(index).toEqual(expect.arrayContaining([{ name: 'tiny_mlp', version: '1', state: 'READY', reason: '' }]))
    expect((await post(`${url}/v2/repository/models/tiny_mlp/unload`, {})).status).toBe(200)
    await expectError(await post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [] }), 404)
    expect((await fetch(`${url}/v2/models/tiny_mlp/ready`)).status).not.toBe(200)
    const after = await (await post(`${url}/v2/repository/index`, {})).json()
    expect(after).toEqual(expect.arrayContaining([{ name: 'tiny_mlp', state: 'UNAVAILABLE', reason: 'unloaded' }]))
    expect((await post(`${url}/v2/repository/models/tiny_mlp/load`, {})).status).toBe(200)
    expect((await post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
    await expectError(await post(`${url}/v2/repository/models/absent/load`, {}), 400, /absent/)
    // Configurations no machine can honour are refused before anything is built; the model keeps serving.
    for (const config of [{ dynamic_batching: { priority_levels: 4294967295 } }, { instance_group: [{ count: 4294967295 }, { count: 4294967295 }] }, { parameters: { intra_op_threads: { string_value: '99999999' } } }]) {
      await expectError(await post(`${url}/v2/repository/models/tiny_mlp/load`, { parameters: { config: JSON.stringify(config) } }), 400)
    }
    expect((await post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
    await expectError(await post(`${url}/v2/repository/models/.git/load`, {}), 400)
  })
})

describe('the server over other repositories', () => {
  it('round-trips BYTES, FP16, INT64 and BOOL tensors, in JSON and binary', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'types', '1'), { recursive: true })
    cpSync(fixture('all_types.onnx'), join(repo, 'types', '1', 'model.onnx'))
    const server = await serve({ repository: repo, port: 0 })
    try {
      const url = `${server.address!.url}/v2/models/types/infer`
      const inputs = [
        { name: 'in_string', datatype: 'BYTES', shape: [1, 3], data: ['a', 'héllo', ''] },
        { name: 'in_float16', datatype: 'FP16', shape: [1, 2], data: [1.5, -2] },
        { name: 'in_int64', datatype: 'INT64', shape: [1, 2], data: ['BIG', -5] },
        { name: 'in_bool', datatype: 'BOOL', shape: [1, 2], data: [true, false] },
      ]
      const meta = await (await fetch(`${server.address!.url}/v2/models/types`)).json()
      const rest = meta.inputs
        .filter((i: { name: string }) => !inputs.some((x) => x.name === i.name))
        .map((i: { name: string; datatype: string }) => ({ name: i.name, datatype: i.datatype, shape: [1, 1], data: [i.datatype === 'BOOL' ? false : i.datatype === 'BYTES' ? 'x' : 1] }))
      // 2^53 + 1 cannot be a JS number: it goes into the JSON text as written.
      const text0 = JSON.stringify({ inputs: [...inputs, ...rest], outputs: ['out_string', 'out_float16', 'out_int64', 'out_bool'].map((name) => ({ name })) }).replace('"BIG"', '9007199254740993')
      const r = await post(url, text0)
      expect(r.status, await r.clone().text()).toBe(200)
      const text = await r.text()
      // The int64 beyond 2^53 comes back exactly.
      expect(text).toContain('9007199254740993')
      const body = JSON.parse(text)
      const out = Object.fromEntries(body.outputs.map((o: { name: string }) => [o.name, o]))
      expect(out.out_string).toMatchObject({ datatype: 'BYTES', shape: [1, 3], data: ['a', 'héllo', ''] })
      expect(out.out_float16).toMatchObject({ datatype: 'FP16', data: [1.5, -2] })
      expect(out.out_bool).toMatchObject({ datatype: 'BOOL', data: [true, false] })
      // Binary BYTES: 4-byte little-endian length, then the bytes.
      const bin = binaryRequest({ inputs: [...inputs, ...rest].map((t) => (t.name === 'in_int64' ? { ...t, data: [1, -5] } : t)), parameters: { binary_data_output: true }, outputs: [{ name: 'out_string' }] })
      const rb = await post(url, bin.body, { 'inference-header-content-length': String(bin.headerLength) })
      expect(rb.status).toBe(200)
      const rr = await readBinaryResponse(rb)
      const b = Buffer.from(rr.tensors.out_string)
      expect(b.readUInt32LE(0)).toBe(1)
      expect(b.toString('utf8', 4, 5)).toBe('a')
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })

  it('serves versions by policy and reloads on poll, keeping the old version when a new one is broken', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'm', '1'), { recursive: true })
    cpSync(fixture('tiny_mlp.onnx'), join(repo, 'm', '1', 'model.onnx'))
    const server = await serve({ repository: repo, port: 0, poll: 100 })
    const url = server.address!.url
    const waitFor = async (cond: () => Promise<boolean>) => {
      for (let i = 0; i < 100; i++) {
        if (await cond()) return
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error('timed out waiting for the poll')
    }
    try {
      expect((await (await fetch(`${url}/v2/models/m`)).json()).versions).toEqual(['1'])
      mkdirSync(join(repo, 'm', '2'))
      cpSync(fixture('tiny_mlp.onnx'), join(repo, 'm', '2', 'model.onnx'))
      await waitFor(async () => (await (await fetch(`${url}/v2/models/m`)).json()).versions?.[0] === '2')
      // The latest policy serves version 2 alone.
      expect((await fetch(`${url}/v2/models/m/versions/1/ready`)).status).toBe(404)
      // A broken version 3: version 2 keeps serving, the index says why.
      mkdirSync(join(repo, 'm', '3'))
      writeFileSync(join(repo, 'm', '3', 'model.onnx'), 'not a model')
      await waitFor(async () => JSON.stringify(await (await post(`${url}/v2/repository/index`, {})).json()).includes('failed'))
      expect((await (await fetch(`${url}/v2/models/m`)).json()).versions).toEqual(['2'])
      expect((await post(`${url}/v2/models/m/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
      // A new model folder appears.
      mkdirSync(join(repo, 'n', '1'), { recursive: true })
      cpSync(fixture('tiny_mlp.onnx'), join(repo, 'n', '1', 'model.onnx'))
      writeFileSync(join(repo, 'n', 'config.json'), JSON.stringify({ version_policy: { all: {} } }))
      await waitFor(async () => (await fetch(`${url}/v2/models/n/ready`)).status === 200)
      // Unloaded through the API, it stays unloaded, even when its files change.
      expect((await post(`${url}/v2/repository/models/n/unload`, {})).status).toBe(200)
      writeFileSync(join(repo, 'n', 'config.json'), JSON.stringify({ version_policy: { latest: { num_versions: 1 } } }))
      await new Promise((r) => setTimeout(r, 400))
      expect((await fetch(`${url}/v2/models/n/ready`)).status).toBe(404)
    } finally {
      await server.close()
    }
    // Started with a list of models, polling reloads those but leaves new folders to the API.
    const listed = await serve({ repository: repo, port: 0, poll: 100, load: ['m'] })
    try {
      mkdirSync(join(repo, 'o', '1'), { recursive: true })
      cpSync(fixture('tiny_mlp.onnx'), join(repo, 'o', '1', 'model.onnx'))
      rmSync(join(repo, 'm', '3'), { recursive: true })
      mkdirSync(join(repo, 'm', '4'))
      cpSync(fixture('tiny_mlp.onnx'), join(repo, 'm', '4', 'model.onnx'))
      const u = listed.address!.url
      for (let i = 0; i < 100 && (await (await fetch(`${u}/v2/models/m`)).json()).versions?.[0] !== '4'; i++) await new Promise((r) => setTimeout(r, 50))
      expect((await (await fetch(`${u}/v2/models/m`)).json()).versions).toEqual(['4'])
      expect((await fetch(`${u}/v2/models/o/ready`)).status).toBe(404)
      expect((await post(`${u}/v2/repository/models/o/load`, {})).status).toBe(200)
      expect((await fetch(`${u}/v2/models/o/ready`)).status).toBe(200)
    } finally {
      await listed.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })

  it('requires the bearer token when one is set, except for health', async () => {
    const repo = repository()
    const server = await serve({ repository: repo, port: 0, token: 's3cret', load: ['tiny_mlp'] })
    try {
      const url = server.address!.url
      expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200)
      const r = await fetch(`${url}/v2/models/tiny_mlp`)
      await expectError(r, 401)
      expect(r.headers.get('www-authenticate')).toBe('Bearer')
      await expectError(await fetch(`${url}/v2/models/tiny_mlp`, { headers: { authorization: 'Bearer wrong' } }), 401)
      expect((await fetch(`${url}/v2/models/tiny_mlp`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200)
      // Only the models asked for were loaded.
      expect(server.models().map((m) => m.name)).toEqual(['tiny_mlp'])
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })

  it('refuses bodies over the limit (413) and full queues (503 with Retry-After)', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'slow', '1'), { recursive: true })
    cpSync(fixture('slow_loop.onnx'), join(repo, 'slow', '1', 'model.onnx'))
    writeFileSync(join(repo, 'slow', 'config.json'), JSON.stringify({ max_batch_size: 0, instance_group: [{ count: 1 }], dynamic_batching: { default_queue_policy: { max_queue_size: 2 } } }))
    const server = await serve({ repository: repo, port: 0, maxBodyBytes: 1 << 20 })
    try {
      const url = server.address!.url
      await expectError(await post(`${url}/v2/models/slow/infer`, 'x'.repeat(2 << 20)), 413)
      // Runs of ~20 ms each on one instance, a queue of 2: most of 12 at once are refused.
      const bin = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [256, 256], data: new Float32Array(65536).fill(0.01) }, { name: 'iters', datatype: 'INT64', shape: [], data: [40] }] })
      const rs = await Promise.all(Array.from({ length: 12 }, () => post(`${url}/v2/models/slow/infer`, bin.body, { 'inference-header-content-length': String(bin.headerLength) })))
      const codes = rs.map((r) => r.status)
      expect(codes).toContain(503)
      expect(codes).toContain(200)
      expect(codes.every((c) => c === 200 || c === 503)).toBe(true)
      const refused = rs.find((r) => r.status === 503)!
      expect(refused.headers.get('retry-after')).toBe('1')
      await expectError(refused, 503)
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })

  it('closes gracefully with 500 requests in flight, losing none', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'held', '1'), { recursive: true })
    cpSync(fixture('tiny_mlp.onnx'), join(repo, 'held', '1', 'model.onnx'))
    // Batches held open for 300 ms keep the requests in flight while we close.
    writeFileSync(join(repo, 'held', 'config.json'), JSON.stringify({ max_batch_size: 1024, dynamic_batching: { max_queue_delay_microseconds: 3_000_000 } }))
    const server = await serve({ repository: repo, port: 0 })
    const url = server.address!.url
    const inflight = Array.from({ length: 500 }, (_, i) => post(`${url}/v2/models/held/infer`, { id: String(i), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(i) }] }))
    const gauge = () => Number(/oxinfer_http_requests_in_flight (\d+)/.exec(server.metrics())?.[1] ?? 0)
    for (let i = 0; i < 400 && gauge() < 500; i++) await new Promise((r) => setTimeout(r, 10))
    expect(gauge()).toBe(500)
    const closed = server.close()
    const rs = await Promise.all(inflight)
    await closed
    // Every request was answered, each with its own result.
    expect(rs.map((r) => r.status)).toEqual(Array(500).fill(200))
    const ids = await Promise.all(rs.map(async (r) => (await r.json()).id))
    expect(ids).toEqual(Array.from({ length: 500 }, (_, i) => String(i)))
    // Closed: nothing more is accepted.
    await expect(fetch(`${url}/v2/health/live`)).rejects.toThrow()
    await rejectsWith(Promise.resolve().then(() => server.models()), 'ERR_DISPOSED')
    rmSync(repo, { recursive: true, force: true })
  })

  it('serves models written in JS through the same protocol', async () => {
    const repo = repository()
    let calls = 0
    const server = await serve({
      repository: repo,
      port: 0,
      load: ['tiny_mlp'],
      models: {
        // Sums each row of x; async, with declared tensors.
        rowsum: {
          inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
          outputs: [
            { name: 'sum', datatype: 'FP32', shape: [-1] },
            { name: 'tag', datatype: 'BYTES', shape: [-1] },
          ],
          handler: async ({ x }) => {
            calls++
            const [rows, cols] = x.dims
            const data = x.data as Float32Array
            const sum = new Float32Array(rows)
            for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sum[r] += data[r * cols + c]
            return { sum: new Tensor('float32', sum, [rows]), tag: { type: 'string', data: Array.from(sum, (v) => (v > 0 ? 'pos' : 'neg')), dims: [rows] } }
          },
        },
        fails: () => {
          throw new Error('deliberate')
        },
        wrong: () => ({ y: 5 }) as never,
      },
    })
    try {
      const url = server.address!.url
      const meta = await (await fetch(`${url}/v2/models/rowsum`)).json()
      expect(meta).toEqual({ name: 'rowsum', versions: ['1'], platform: 'oxinfer_js', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'sum', datatype: 'FP32', shape: [-1] }, { name: 'tag', datatype: 'BYTES', shape: [-1] }] })
      expect((await fetch(`${url}/v2/models/rowsum/ready`)).status).toBe(200)
      const r = await post(`${url}/v2/models/rowsum/infer`, { id: 'j1', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: [1, 2, 3, 4, -1, -2, -3, -4] }] })
      expect(r.status).toBe(200)
      expect(await r.json()).toEqual({ model_name: 'rowsum', model_version: '1', id: 'j1', outputs: [{ name: 'sum', datatype: 'FP32', shape: [2], data: [10, -10] }, { name: 'tag', datatype: 'BYTES', shape: [2], data: ['pos', 'neg'] }] })
      // Binary in and out, one output asked for.
      const bin = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: Float32Array.from([0.5, 0.5, 0.5, 0.5]) }], parameters: { binary_data_output: true }, outputs: [{ name: 'sum' }] })
      const rb = await readBinaryResponse(await post(`${url}/v2/models/rowsum/infer`, bin.body, { 'inference-header-content-length': String(bin.headerLength) }))
      expect(rb.header.outputs.map((o: { name: string }) => o.name)).toEqual(['sum'])
      expect(new Float32Array(rb.tensors.sum.buffer, rb.tensors.sum.byteOffset, 1)[0]).toBe(2)
      // Many at once: each gets its own answer.
      const many = await Promise.all(Array.from({ length: 200 }, (_, i) => post(`${url}/v2/models/rowsum/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [i, 0, 0, 0] }] }).then((res) => res.json())))
      many.forEach((m, i) => expect(m.outputs[0].data[0]).toBe(i))
      expect(calls).toBe(202)
      await expectError(await post(`${url}/v2/models/rowsum/infer`, { inputs: [{ name: 'z', datatype: 'FP32', shape: [1], data: [1] }] }), 400, /unknown input 'z'/)
      await expectError(await post(`${url}/v2/models/rowsum/versions/2/infer`, { inputs: [] }), 404)
      await expectError(await post(`${url}/v2/models/fails/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }), 500, /deliberate/)
      await expectError(await post(`${url}/v2/models/wrong/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }), 500, /output 'y'/)
      const index = await (await post(`${url}/v2/repository/index`, {})).json()
      expect(index).toEqual(expect.arrayContaining([{ name: 'rowsum', version: '1', state: 'READY', reason: '' }]))
      // Still serving the engine's models beside them.
      expect((await post(`${url}/v2/models/tiny_mlp/infer`, { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(0) }] })).status).toBe(200)
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
    await rejectsWith(serve({ repository: repo, port: 0, models: { 'a/b': () => ({}) } }), 'ERR_FILE')
    const repo2 = repository()
    await rejectsWith(serve({ repository: repo2, port: 0, load: [], models: { 'a/b': () => ({}) } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(serve({ repository: repo2, port: 0, load: ['tiny_mlp'], models: { tiny_mlp: () => ({}) } }), 'ERR_INVALID_ARGUMENT')
    rmSync(repo2, { recursive: true, force: true })
  })

  it('refuses bad options and a missing repository with coded errors', async () => {
    await rejectsWith(serve({ repository: '/nonexistent/repo', port: 0 }), 'ERR_FILE')
    await rejectsWith(serve({ repository: '.', port: 70000 }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(serve({ repository: '.', port: 0, colour: 'red' } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(serve(null as never), 'ERR_INVALID_ARGUMENT')
  })
})
