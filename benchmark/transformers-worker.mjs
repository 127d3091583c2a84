// One side of benchmark/transformers.mjs, in its own process (onnxruntime-
// common's backend registry is per process): a transformers.js
// feature-extraction pipeline over the tiny BERT fixture, its inputs fixed
// at 128 tokens (texts longer than that, truncated by the tokenizer's
// model_max_length), mean-pooled and normalised. argv: mode (`oxinfer`:
// `import 'oxinfer/register'` first; otherwise onnxruntime-node), then the
// concurrency levels. Prints one JSON line: per level, the median calls/s of
// the rounds and the longest event-loop stall seen.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { FIXTURES } from './util.mjs'

const [mode, ...levels] = process.argv.slice(2)
if (mode === 'oxinfer') await import('oxinfer/register')
const { pipeline, env } = await import('@huggingface/transformers')
env.allowRemoteModels = false
env.localModelPath = join(FIXTURES, 'bert') + '/'

// Long texts from the committed corpus: each tokenises past 128 tokens, so every call is [1, 128].
const lines = JSON.parse(readFileSync(join(FIXTURES, 'text', 'lines.json'), 'utf8')).lines
const TEXTS = Array.from({ length: 64 }, (_, i) => Array.from({ length: 12 }, (_, j) => lines[(i * 12 + j) % lines.length]).join(' '))
const session_options = mode === 'oxinfer' ? { extra: { batching: { maxBatchSize: 32 } } } : {}
const fe = await pipeline('feature-extraction', 'tiny-bert', { dtype: 'fp32', session_options })
const call = (i) => fe(TEXTS[i % TEXTS.length], { pooling: 'mean', normalize: true })
const handler = fe.model.sessions.model.handler.constructor.name
if (handler !== (mode === 'oxinfer' ? 'OxinferSessionHandler' : 'OnnxruntimeSessionHandler')) throw new Error(`the ${mode} side runs on ${handler}`)
const check = await fe.tokenizer(TEXTS[0], { truncation: true })
if (check.input_ids.dims[1] !== 128) throw new Error(`inputs are ${check.input_ids.dims[1]} tokens, not 128`)

/** Runs `c` calls at a time for `seconds`: calls/s, and the longest gap between ticks of a 1 ms timer. */
async function round(c, seconds) {
  let last = performance.now()
  let maxStall = 0
  const tick = setInterval(() => {
    const now = performance.now()
    maxStall = Math.max(maxStall, now - last)
    last = now
  }, 1)
  const t0 = performance.now()
  let done = 0
  let next = 0
  const worker = async () => {
    while (performance.now() - t0 < seconds * 1000) {
      await call(next++)
      done++
    }
  }
  await Promise.all(Array.from({ length: c }, worker))
  const elapsed = (performance.now() - t0) / 1000
  maxStall = Math.max(maxStall, performance.now() - last)
  clearInterval(tick)
  return { callsPerSecond: done / elapsed, maxStallMs: maxStall }
}

await round(8, 1) // warm-up
const out = { mode, handler, levels: {} }
for (const c of levels.map(Number)) {
  const rounds = []
  for (let r = 0; r < 5; r++) rounds.push(await round(c, 2))
  const rates = rounds.map((x) => x.callsPerSecond).sort((a, b) => a - b)
  out.levels[c] = { medianCallsPerSecond: Math.round(rates[2] * 10) / 10, rounds: rates.map((x) => Math.round(x)), maxStallMs: Math.round(Math.max(...rounds.map((x) => x.maxStallMs)) * 10) / 10, medianStallMs: Math.round(rounds.map((x) => x.maxStallMs).sort((a, b) => a - b)[2] * 10) / 10 }
}
if (typeof fe.model.sessions.model.handler.stats === 'function') out.stats = fe.model.sessions.model.handler.stats()
console.log(JSON.stringify(out))
