// The Fastify plugin (oxinfer/fastify): the protocol routes mounted on an
// existing Fastify app, bodies handed raw to the native handler. Driven with
// Fastify's inject and over a real socket.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'

// @ts-expect-error: a plain .mjs script without types
import { ensureExampleRepository } from '../scripts/example-repository.mjs'

import { serve } from '../index.js'
import { binaryRequest, readBinaryResponse } from './server-helpers'

const require = createRequire(import.meta.url)
const x16 = (seed: number): number[] => Array.from({ length: 16 }, (_, i) => Math.sin(seed * 16 + i))

describe('oxinfer/fastify', () => {
  it('mounts the KServe v2 routes on a Fastify app, next to its own routes', async () => {
    const { oxinferPlugin } = require('../src/fastify.js')
    const esm = await import('../src/fastify.mjs')
    // (vitest loads the .mjs through its own module graph: same function, another instance)
    expect(esm.default.name).toBe(oxinferPlugin.name)
    expect(typeof esm.default).toBe('function')
    const app = Fastify()
    app.get('/hello', async () => ({ hello: 'world' }))
    await app.register(oxinferPlugin, { repository: ensureExampleRepository() })
    try {
      expect((await app.inject({ method: 'GET', url: '/hello' })).json()).toEqual({ hello: 'world' })
      const meta = await app.inject({ method: 'GET', url: '/v2/models/tiny_mlp' })
      expect(meta.statusCode).toBe(200)
      expect(meta.json()).toMatchObject({ name: 'tiny_mlp', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 16] }] })
      expect((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200)
      const r = await app.inject({ method: 'POST', url: '/v2/models/tiny_mlp/infer', payload: { id: 'f1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(1) }] } })
      expect(r.statusCode).toBe(200)
      expect(r.json()).toMatchObject({ id: 'f1', model_name: 'tiny_mlp', outputs: [{ name: 'y', shape: [1, 2] }] })
      const stats = (await app.inject({ method: 'GET', url: '/v2/models/tiny_mlp/stats' })).json()
      expect(stats.model_stats[0].inference_stats.success.count).toBe(1)
      // Binary tensors pass through untouched.
      const bin = binaryRequest({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: Float32Array.from(x16(1)) }], parameters: { binary_data_output: true } })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const addr = app.server.address() as { port: number }
      const rb = await fetch(`http://127.0.0.1:${addr.port}/v2/models/tiny_mlp/infer`, { method: 'POST', body: bin.body, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(bin.headerLength) } })
      expect(rb.status).toBe(200)
      const res = await readBinaryResponse(rb)
      const y = new Float32Array(res.tensors.y.buffer, res.tensors.y.byteOffset, 2)
      expect(y[0]).toBeCloseTo(r.json().outputs[0].data[0], 5)
      // Errors keep their status and JSON body.
      const bad = await app.inject({ method: 'POST', url: '/v2/models/tiny_mlp/infer', payload: '{"inputs": [' , headers: { 'content-type': 'application/json' } })
      expect(bad.statusCode).toBe(400)
      expect(typeof bad.json().error).toBe('string')
      const missing = await app.inject({ method: 'GET', url: '/v2/models/nope' })
      expect(missing.statusCode).toBe(404)
      expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/oxinfer_inference_request_success/)
    } finally {
      await app.close()
    }
  })

  it('takes a prefix, and a server of the caller\'s own that in-process calls share', async () => {
    const { oxinferPlugin } = require('../src/fastify.js')
    const server = await serve({ repository: ensureExampleRepository(), load: ['tiny_mlp'], listen: false })
    expect(server.address).toBeNull()
    const app = Fastify()
    await app.register(oxinferPlugin, { server, prefix: '/ml' })
    try {
      expect((await app.inject({ method: 'GET', url: '/ml/v2/models/tiny_mlp/ready' })).statusCode).toBe(200)
      expect((await app.inject({ method: 'GET', url: '/v2/models/tiny_mlp/ready' })).statusCode).toBe(404)
      await app.inject({ method: 'POST', url: '/ml/v2/models/tiny_mlp/infer', payload: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: x16(2) }] } })
      expect(server.stats().model_stats[0].inference_stats.success.count).toBe(1)
    } finally {
      await app.close()
    }
    // The app does not close a server it was given.
    expect(server.models()).toHaveLength(1)
    await server.close()
  })

  it('the example app (examples/fastify-app.mjs) serves its own route and the models', async () => {
    const { spawn } = await import('node:child_process')
    const { join } = await import('node:path')
    const child = spawn(process.execPath, [join(ensureExampleRepository(), '..', 'fastify-app.mjs')], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    try {
      for (let i = 0; i < 200 && !out.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 50))
      const url = /listening on (\S+):/.exec(out)![1]
      expect(await (await fetch(`${url}/hello`)).json()).toEqual({ hello: 'world' })
      expect((await (await fetch(`${url}/ml/v2/models/penguins`)).json()).platform).toBe('oxinfer_pipeline')
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
  })
})
