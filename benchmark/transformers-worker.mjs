// One side of benchmark/transformers.mjs, in its own process (onnxruntime-
// common's backend registry is per process): a transformers.js
// feature-extraction pipeline over the tiny BERT fixture, its inputs fixed
// at 128 tokens (prose of about 1,000 characters, truncated by the
// tokenizer's model_max_length), mean-pooled and normalised. argv: mode (`oxinfer`:
// `import 'oxinfer/register'` first; otherwise onnxruntime-node), then the
// concurrency levels (`oxinfer-spinning`: oxinfer with onnxruntime-node's
// threading, one session on every core with idle threads spinning). Prints one JSON line: per level, the median calls/s of
// the rounds and the longest event-loop stall seen.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'

import { FIXTURES } from './util.mjs'

const [mode, ...levels] = process.argv.slice(2)
const OXINFER = {
  // oxinfer's defaults (a pool of one-thread sessions, no spinning) and dynamic batching.
  oxinfer: { extra: { batching: { maxBatchSize: 32 } } },
  // onnxruntime-node's threading instead: one session on every core, idle threads spinning.
  'oxinfer-spinning': { intraOpNumThreads: availableParallelism(), extra: { poolSize: 1, session: { intra_op: { allow_spinning: '1' } }, batching: { maxBatchSize: 32 } } },
}
if (mode in OXINFER) await import('oxinfer/register')
const { pipeline, env } = await import('@huggingface/transformers')
env.allowRemoteModels = false
// The model: the tiny BERT fixture, or OXINFER_BENCH_MODEL's folder (a model from `make_bert_fixtures.py --shape`).
const model = process.env.OXINFER_BENCH_MODEL ? resolve(process.env.OXINFER_BENCH_MODEL) : join(FIXTURES, 'bert', 'tiny-bert')
env.localModelPath = dirname(model) + '/'

// Texts of ordinary prose from the committed corpus, each just past 128
// tokens, so every call is [1, 128]. The corpus's adversarial lines (runs of
// 5,000-6,000 identical characters, digits or CJK, kept there for tokenizer
// parity) are left out: transformers.js tokenises a whole text before
// truncating, 10-22 ms for a text holding them, which is no request this
// benchmark's 128 tokens stand for.
const lines = JSON.parse(readFileSync(join(FIXTURES, 'text', 'lines.json'), 'utf8')).lines.filter((l) => l.length <= 400 && !l.split(/\s+/).some((w) => w.length > 40))
const TEXTS = []
for (let at = 0; TEXTS.length < 64; ) {
  let text = ''
  while (text.length < 1000) text += `${lines[at++ % lines.length].trim()} `
  TEXTS.push(text.trim())
}
const session_options = OXINFER[mode] ?? {}
const fe = await pipeline('feature-extraction', basename(model), { dtype: 'fp32', session_options })
const call = (i) => fe(TEXTS[i % TEXTS.length], { pooling: 'mean', normalize: true })
const handler = fe.model.sessions.model.handler.constructor.name
if (handler !== (mode in OXINFER ? 'OxinferSessionHandler' : 'OnnxruntimeSessionHandler')) throw new Error(`the ${mode} side runs on ${handler}`)
for (const [i, text] of TEXTS.entries()) {
  const n = (await fe.tokenizer(text, { truncation: true })).input_ids.dims[1]
  if (n !== 128) throw new Error(`text ${i} is ${n} tokens, not 128`)
}

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
  // The callers start one per event-loop turn, as requests reach a server,
  // not all in one synchronous burst (c tokenisations back to back).
  const workers = []
  for (let k = 0; k < c; k++) {
    workers.push(worker())
    await new Promise((resolve) => setImmediate(resolve))
  }
  await Promise.all(workers)
  const elapsed = (performance.now() - t0) / 1000
  maxStall = Math.max(maxStall, performance.now() - last)
  clearInterval(tick)
  return { callsPerSecond: done / elapsed, maxStallMs: maxStall }
}

await round(8, 1) // warm-up
const out = { mode, handler, model: basename(model), levels: {} }
for (const c of levels.map(Number)) {
  const rounds = []
  for (let r = 0; r < 5; r++) rounds.push(await round(c, 2))
  const rates = rounds.map((x) => x.callsPerSecond).sort((a, b) => a - b)
  out.levels[c] = { medianCallsPerSecond: Math.round(rates[2] * 10) / 10, rounds: rates.map((x) => Math.round(x)), maxStallMs: Math.round(Math.max(...rounds.map((x) => x.maxStallMs)) * 10) / 10, medianStallMs: Math.round(rounds.map((x) => x.maxStallMs).sort((a, b) => a - b)[2] * 10) / 10 }
}
if (typeof fe.model.sessions.model.handler.stats === 'function') out.stats = fe.model.sessions.model.handler.stats()
console.log(JSON.stringify(out))
