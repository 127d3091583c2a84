// The server as operators meet it: native logs bridged to pino (a real pino
// logger and a plain line stream), its metrics merged into a real prom-client
// registry, JS models in stats and metrics, the Fastify path answered without
// holding libuv threads, and closes that wait for (or, past the drain
// deadline, drop) what is in flight.
import { pbkdf2 } from 'node:crypto'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import pino from 'pino'
import { Registry, Counter } from 'prom-client'
import { describe, expect, it } from 'vitest'

// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'
import { serve, setLogger, Tensor } from '../index.js'
import { oxinferPlugin } from '../src/fastify.js'
import { fixture, rejectsWith } from './helpers'

const x16 = (seed: number): number[] => Array.from({ length: 16 }, (_, i) => Math.sin(seed * 16 + i))
const infer = (url: string, model: string, body: unknown) => fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Lines written to it, parsed. */
function lineStream() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l))
      done()
    },
  })
  return { lines, stream }
}

async function until(f: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !f(); i++) await tick(10)
  if (!f()) throw new Error(`timed out waiting for ${what}`)
}

describe('server logs', () => {
  it('reach a real pino logger with their fields, and a line stream as pino JSON', async () => {
    const { lines, stream } = lineStream()
    const logger = pino({ level: 'debug', base: { svc: 'test' } }, stream)
    const server = await serve({ repository: ensureExampleRepository(), port: 0, load: ['tiny_mlp', 'nope'], logger })
    try {
      await until(() => lines.some((l) => l.msg === 'model failed to load'), 'the load failure line')
      // pino wrote them: its own base, its level numbers, and the native event's fields.
      expect(lines.find((l) => l.msg === 'model loaded')).toMatchObject({ level: 30, svc: 'test', model: 'tiny_mlp', target: expect.stringMatching(/^oxinfer_server/) })
      expect(lines.find((l) => l.msg === 'model failed to load')).toMatchObject({ level: 40, model: 'nope', error: expect.stringMatching(/nope/) })
      // At debug (the logger's own level), one access line per request.
      expect((await infer(server.address!.url, 'tiny_mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(1) }] })).status).toBe(200)
      expect((await infer(server.address!.url, 'tiny_mlp', { inputs: [] })).status).toBe(400)
      await until(() => lines.filter((l) => l.msg === 'request').length >= 2, 'two access lines')
      const access = lines.filter((l) => l.msg === 'request')
      expect(access.map((l) => [l.level, l.method, l.path, l.status])).toEqual([
        [20, 'POST', '/v2/models/tiny_mlp/infer', 200],
        [20, 'POST', '/v2/models/tiny_mlp/infer', 400],
      ])
      expect(access[0].micros).toEqual(expect.any(Number))
    } finally {
      await server.close()
    }
    // A plain stream gets pino's own line shape; 'warn' keeps the info lines out.
    const plain = lineStream()
    const s2 = await serve({ repository: ensureExampleRepository(), port: 0, load: ['tiny_mlp', 'nope'], logger: plain.stream, logLevel: 'warn' })
    try {
      await until(() => plain.lines.length > 0, 'a warn line')
      await tick(50)
      expect(plain.lines.every((l) => (l.level as number) >= 40)).toBe(true)
      expect(plain.lines[0]).toMatchObject({ level: 40, name: 'oxinfer', pid: process.pid, hostname: expect.any(String), time: expect.any(Number), msg: 'model failed to load' })
    } finally {
      await s2.close()
    }
    // Off: no more lines reach it.
    setLogger(null)
    const before = plain.lines.length
    const s3 = await serve({ repository: ensureExampleRepository(), port: 0, load: ['nope'] })
    await s3.close()
    await tick(50)
    expect(plain.lines.length).toBe(before)
  })

  it('refuses loggers and levels it cannot use', async () => {
    expect(() => setLogger({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => setLogger(process.stdout, 'loud' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    await rejectsWith(serve({ repository: ensureExampleRepository(), port: 0, logLevel: 'info' }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(serve({ repository: ensureExampleRepository(), port: 0, drainMs: -1 }), 'ERR_INVALID_ARGUMENT')
  })
})

describe('server metrics for a host service', () => {
  it('merge into a real prom-client registry, JS models included, and read afresh on each scrape', async () => {
    const server = await serve({ repository: ensureExampleRepository(), port: 0, load: ['tiny_mlp'], models: { echo: ({ x }) => ({ y: x }) } })
    try {
      const own = new Registry()
      const hits = new Counter({ name: 'app_hits_total', help: 'the host app', registers: [own] })
      hits.inc(3)
      const merged = Registry.merge([own, server.registry() as never])
      const url = server.address!.url
      expect((await infer(url, 'tiny_mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: [...x16(1), ...x16(2)] }] })).status).toBe(200)
      expect((await infer(url, 'echo', { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [7] }] })).status).toBe(200)
      const text = await merged.metrics()
      expect(text).toMatch(/^app_hits_total 3$/m)
      expect(text).toMatch(/^oxinfer_inference_request_success\{model="tiny_mlp",version="1"\} 1$/m)
      expect(text).toMatch(/^oxinfer_inference_count\{model="tiny_mlp",version="1"\} 2$/m)
      expect(text).toMatch(/^oxinfer_inference_request_success\{model="echo",version="1"\} 1$/m)
      expect(text).toMatch(/^oxinfer_model_ready\{model="echo",version="1"\} 1$/m)
      expect(text).toMatch(/^oxinfer_inference_compute_infer_duration_us_bucket\{model="tiny_mlp",version="1",le="\+Inf"\} 1$/m)
      expect(text).toMatch(/^# TYPE oxinfer_inference_queue_duration_us histogram$/m)
      // The same figures as the server's own exposition, sample for sample.
      const samples = (t: string) => t.split('\n').filter((l) => l.startsWith('oxinfer_') && !l.startsWith('oxinfer_http_requests_in_flight')).map((l) => l.replace(/\{([^}]*)\}/, (_m, inner: string) => `{${inner.split(',').sort().join(',')}}`)).sort()
      expect(samples(text)).toEqual(samples(server.metrics()))
      // A second scrape sees new requests.
      await infer(url, 'tiny_mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(3) }] })
      await tick(5)
      expect(await merged.metrics()).toMatch(/^oxinfer_inference_request_success\{model="tiny_mlp",version="1"\} 2$/m)
      // Merging it twice is a name clash, as for any two registries with the same metric.
      expect(() => Registry.merge([server.registry() as never, server.registry() as never])).toThrow(/already been registered/)
      // JS models in the statistics extension too.
      const stats = server.stats().model_stats
      expect(stats.find((s) => s.name === 'echo')).toMatchObject({ version: '1', inference_count: 1, execution_count: 1, inference_stats: { success: { count: 1 } } })
      expect((await (await fetch(`${url}/v2/models/echo/stats`)).json()).model_stats[0].name).toBe('echo')
    } finally {
      await server.close()
    }
  })
})

describe('the Fastify path and closing', () => {
  it('answers without holding libuv threads: JS models that use the thread pool do not starve', async () => {
    // Each request's handler needs a libuv pool thread (pbkdf2). Were each
    // plugin request to hold one of the 4 pool threads while it waits, 16 at
    // once would leave the handlers none, and every request would time out.
    const server = await serve({
      repository: ensureExampleRepository(),
      listen: false,
      load: [],
      timeoutMs: 20_000,
      models: {
        hash: async ({ x }) => {
          const key = await new Promise<Buffer>((res, rej) => pbkdf2(Buffer.from(x.data as Int32Array), 'salt', 2000, 8, 'sha256', (e, k) => (e ? rej(e) : res(k))))
          return { h: new Tensor('uint8', new Uint8Array(key), [8]) }
        },
      },
    })
    const app = Fastify()
    await app.register(oxinferPlugin, { server })
    try {
      const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => app.inject({ method: 'POST', url: '/v2/models/hash/infer', payload: { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [i] }] } })))
      expect(rs.map((r) => r.statusCode)).toEqual(Array(16).fill(200))
      expect(new Set(rs.map((r) => JSON.stringify(r.json().outputs[0].data))).size).toBe(16)
    } finally {
      await app.close()
      await server.close()
    }
  })

  it('close waits for plugin requests in flight, and the drain deadline bounds a close', async () => {
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => (release = r))
    const server = await serve({ repository: ensureExampleRepository(), listen: false, load: [], models: { slow: async ({ x }) => (await gate, { y: x }) } })
    const app = Fastify()
    await app.register(oxinferPlugin, { server })
    const pending = Array.from({ length: 5 }, (_, i) => app.inject({ method: 'POST', url: '/v2/models/slow/infer', payload: { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [i] }] } }))
    await tick(50)
    let closed = false
    const closing = server.close().then(() => (closed = true))
    await tick(100)
    expect(closed).toBe(false)
    release()
    const rs = await Promise.all(pending)
    await closing
    expect(rs.map((r) => r.json().outputs[0].data[0])).toEqual([0, 1, 2, 3, 4])
    // Closed: the plugin's next request is refused (the app answers 500 for the rejection).
    expect((await app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(500)
    await app.close()

    // Past the drain deadline, a plugin request still waiting answers 503 instead of hanging.
    const never = await serve({ repository: ensureExampleRepository(), listen: false, load: [], drainMs: 0, models: { never: () => new Promise(() => {}) } })
    const app2 = Fastify()
    await app2.register(oxinferPlugin, { server: never })
    const waiting = app2.inject({ method: 'POST', url: '/v2/models/never/infer', payload: { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] } })
    await tick(50)
    await never.close()
    expect((await waiting).statusCode).toBe(503)
    await app2.close()

    // A handler that never answers: a close gives up after drainMs, well before the 60 s model timeout.
    const stuck = await serve({ repository: ensureExampleRepository(), port: 0, load: [], drainMs: 200, models: { never: () => new Promise(() => {}) } })
    const req = infer(stuck.address!.url, 'never', { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] }).then((r) => r.status, () => 'dropped')
    await tick(100)
    const started = Date.now()
    await stuck.close()
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(await req).toBe('dropped')
  })
})

describe('requests whose clients hang up', () => {
  it('are not run when they were still queued', async () => {
    // One instance of a model whose run takes as long as asked: a short run
    // holds it while a second request, which would take hours, waits; that
    // client hangs up, and the queue must drop its run instead of starting it.
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'slow', '1'), { recursive: true })
    cpSync(fixture('slow_loop.onnx'), join(repo, 'slow', '1', 'model.onnx'))
    writeFileSync(join(repo, 'slow', 'config.json'), JSON.stringify({ max_batch_size: 0, instance_group: [{ count: 1 }] }))
    const server = await serve({ repository: repo, port: 0, drainMs: 1000 })
    const url = server.address!.url
    const run = (iters: number, signal?: AbortSignal) =>
      fetch(`${url}/v2/models/slow/infer`, { method: 'POST', signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [256, 256], data: new Array(65536).fill(0.01) }, { name: 'iters', datatype: 'INT64', shape: [], data: [iters] }] }) })
    const pending = () => server.stats().model_stats[0].pending_request_count
    try {
      const first = run(2000)
      await until(() => pending() === 1, 'the first run')
      const hangUp = new AbortController()
      const second = run(50_000_000, hangUp.signal).catch((e: Error) => e.name)
      await until(() => pending() === 2, 'the second request to queue')
      hangUp.abort()
      expect(await second).toBe('AbortError')
      expect((await first).status).toBe(200)
      // Had it started, the second run would hold the model for hours.
      await until(() => pending() === 0, 'the queue to drop the abandoned run')
      const again = await run(1)
      expect(again.status).toBe(200)
    } finally {
      await server.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })
})

describe('graphs served as models', () => {
  it('a graph.json version runs other served models (sharing their queues) and ONNX files of its own', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'oxinfer-repo-'))
    mkdirSync(join(repo, 'mlp', '1'), { recursive: true })
    cpSync(fixture('tiny_mlp.onnx'), join(repo, 'mlp', '1', 'model.onnx'))
    // 'a_chain' sorts before 'mlp': graphs load after the models they name.
    mkdirSync(join(repo, 'a_chain', '1'), { recursive: true })
    cpSync(fixture('tiny_mlp.onnx'), join(repo, 'a_chain', '1', 'own.onnx'))
    const spec = {
      version: 1,
      inputs: { x: { type: 'float32', shape: [-1, 16] } },
      nodes: [
        { name: 'served', kind: 'model', model: 'mlp', inputs: { x: 'x' } },
        { name: 'own', kind: 'model', model: 'own.onnx', inputs: { x: 'x' } },
        { name: 'sum', kind: 'op', op: 'add', inputs: ['served.y', 'own.y'] },
        { name: 'best', kind: 'op', op: 'argmax', axis: 1, inputs: ['sum.y'] },
        { name: 'big', kind: 'op', op: 'sigmoid', inputs: ['sum.y'], when: { input: 'sum.y', op: '>', value: 100 } },
        { name: 'pick', kind: 'switch', inputs: { x: 'x' }, variants: [{ model: 'mlp', quality: 0.9 }, { model: 'own.onnx', quality: 0.5, name: 'own' }], policy: { kind: 'explicit' } },
      ],
      outputs: { sum: 'sum.y', best: 'best.y', big: 'big.y', picked: 'pick.y' },
    }
    writeFileSync(join(repo, 'a_chain', '1', 'graph.json'), JSON.stringify(spec))
    const server = await serve({ repository: repo, port: 0 })
    try {
      expect(server.failures).toEqual([])
      const url = server.address!.url
      const meta = await (await fetch(`${url}/v2/models/a_chain`)).json()
      expect(meta).toMatchObject({ name: 'a_chain', platform: 'oxinfer_graph', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 16] }] })
      const x = [...x16(1), ...x16(2)]
      const r = await infer(url, 'a_chain', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: x }], outputs: [{ name: 'best' }, { name: 'sum' }, { name: 'big' }] })
      expect(r.status).toBe(200)
      const body = await r.json()
      const y = (await (await infer(url, 'mlp', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 16], data: x }] })).json()).outputs[0].data as number[]
      const sum = body.outputs.find((o: { name: string }) => o.name === 'sum')
      sum.data.forEach((v: number, i: number) => expect(v).toBeCloseTo(2 * y[i], 5))
      expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(['best', 'sum', 'big'])
      expect(body.outputs[0]).toMatchObject({ datatype: 'INT64', shape: [2], data: [y[0] > y[1] ? 0 : 1, y[2] > y[3] ? 0 : 1] })
      // A skipped output answers as an empty tensor.
      expect(body.outputs[2]).toMatchObject({ name: 'big', shape: [0], data: [] })
      // The graph's runs of 'mlp' (its node, and the switch's best variant) went through the served model's own queue.
      expect(server.stats().model_stats.find((s) => s.name === 'mlp')!.execution_count).toBe(3)
      const graphStats = server.stats().model_stats.find((s) => s.name === 'a_chain') as any
      expect(graphStats).toMatchObject({ inference_count: 2, execution_count: 1 })
      // The switch's decisions, in the statistics and the metrics.
      expect(graphStats.graph_switches).toMatchObject([{ node: 'pick', policy: 'explicit', current: 0, decisions: 1, variants: [{ name: 'mlp', chosen: 1 }, { name: 'own', chosen: 0 }] }])
      const metrics = server.metrics()
      expect(metrics).toMatch(/^oxinfer_graph_switch_requests\{model="a_chain",node="pick",variant="mlp",version="1"\} 1$/m)
      expect(metrics).toMatch(/^oxinfer_graph_switch_variant\{model="a_chain",node="pick",version="1"\} 0$/m)
      await expectError(await infer(url, 'a_chain', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }), 400)
      expect(() => server.session('a_chain')).toThrow(/graph/)
    } finally {
      await server.close()
    }
    // A graph naming a model the repository does not serve fails to load, saying which.
    writeFileSync(join(repo, 'a_chain', '1', 'graph.json'), JSON.stringify({ ...spec, nodes: [{ ...spec.nodes[0], model: 'ghost' }, ...spec.nodes.slice(1)] }))
    const s2 = await serve({ repository: repo, port: 0 })
    try {
      expect(s2.failures).toEqual([{ model: 'a_chain', reason: expect.stringMatching(/'ghost'/) }])
    } finally {
      await s2.close()
      rmSync(repo, { recursive: true, force: true })
    }
  })
})

async function expectError(r: Response, status: number): Promise<void> {
  expect(r.status).toBe(status)
  expect(typeof (await r.json()).error).toBe('string')
}
