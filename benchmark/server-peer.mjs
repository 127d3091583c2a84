// A server under test for benchmark/server.mjs, started in its own process:
//   node benchmark/server-peer.mjs fastify-ort PORT  - Fastify 5 + onnxruntime-node
//     (1 intra-op thread) with the penguins pre- and post-processing in JS,
//     compiled once into closures (benchmark/pipeline.mjs), taking and giving
//     the same KServe v2 JSON as oxinfer: what a Node developer writes today;
//   node benchmark/server-peer.mjs fastify-plugin PORT - Fastify 5 with
//     oxinfer/fastify mounted (bodies handed to the native handler);
//   node benchmark/server-peer.mjs oxinfer PORT - oxinfer's own server;
//   node benchmark/server-peer.mjs oxinfer-js PORT - oxinfer's server with the
//     fastify-ort work as a JS model (the slow path).
// Prints "ready" on stdout once it accepts requests.
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { makeClosurePipeline } from './pipeline.mjs'
import { FIXTURES, ROOT } from './util.mjs'

const require = createRequire(import.meta.url)
const [kind, portArg] = process.argv.slice(2)
const port = Number(portArg)
const repository = join(ROOT, 'examples', 'repository')

if (kind === 'oxinfer') {
  const { serve } = require(join(ROOT, 'index.js'))
  await serve({ repository, port, host: '127.0.0.1' })
} else if (kind === 'oxinfer-js') {
  // A JS model on oxinfer's server: the fastify-ort work (closures + onnxruntime-node) as a handler.
  const { serve, Tensor } = require(join(ROOT, 'index.js'))
  const ort = require('onnxruntime-node')
  const session = await ort.InferenceSession.create(join(FIXTURES, 'penguins', 'penguins.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
  const pipeline = makeClosurePipeline(ort, session)
  const handler = async (inputs) => {
    const cols = {}
    let n = 0
    for (const [name, t] of Object.entries(inputs)) {
      cols[name] = t.data
      n = t.dims[0]
    }
    const out = await pipeline.runColumns(cols, n)
    return { label: new Tensor('string', out.label, [n]), score: new Tensor('float32', out.score, [n]) }
  }
  await serve({ repository, port, host: '127.0.0.1', load: [], models: { penguins: handler } })
} else if (kind === 'fastify-plugin') {
  const Fastify = require('fastify')
  const { oxinferPlugin } = require(join(ROOT, 'src', 'fastify.js'))
  const app = Fastify({ bodyLimit: 64 << 20 })
  await app.register(oxinferPlugin, { repository })
  await app.listen({ port, host: '127.0.0.1' })
} else if (kind === 'fastify-ort') {
  const Fastify = require('fastify')
  const ort = require('onnxruntime-node')
  const session = await ort.InferenceSession.create(join(FIXTURES, 'penguins', 'penguins.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' })
  const pipeline = makeClosurePipeline(ort, session)
  const app = Fastify({ bodyLimit: 64 << 20 })
  app.post('/v2/models/penguins/infer', async (req, reply) => {
    const body = req.body
    const cols = {}
    let n = 0
    for (const t of body.inputs ?? []) {
      cols[t.name] = t.data
      n = t.shape[0]
    }
    if (n < 1) return reply.code(400).send({ error: 'no rows' })
    const out = await pipeline.runColumns(cols, n)
    return {
      model_name: 'penguins',
      model_version: '1',
      id: body.id,
      outputs: [
        { name: 'label', datatype: 'BYTES', shape: [n], data: out.label },
        { name: 'score', datatype: 'FP32', shape: [n], data: Array.from(out.score) },
      ],
    }
  })
  await app.listen({ port, host: '127.0.0.1' })
} else {
  throw new Error(`unknown server kind '${kind}'`)
}
process.stdout.write('ready\n')
