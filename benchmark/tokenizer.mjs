// Tokenizer benchmark (issue #4): tokenising benchmark/data/corpus.txt (5,000
// real lines) with the Qwen3 tokenizer.json, in lines/s:
//
//   - oxinfer: Tokenizer.fromFile() then encodeBatch() over the whole corpus,
//     and over batches of 1,024 and 256 lines awaited one after another
//     (default options: special tokens added, no padding, no offsets, int32 ids);
//   - the transformers.js tokenizer (@lenml/tokenizers, the tokenizer-only
//     fork of transformers.js), built from the same tokenizer.json and
//     tokenizer_config.json, encoding line by line on the JS thread;
//   - the limit: the Rust `tokenizers` crate (same version and features as
//     oxinfer) called directly, `encode_batch` over the corpus on all cores
//     (benchmark/rust-tokenizers, its own process, once per round).
//
// Also checks that both JS-side tokenizers give the same ids for every line.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { BENCH_DIR, FIXTURES, QUICK, ROOT, cleanRound, loadOxinfer, log, median, now, round } from './util.mjs'

const require = createRequire(import.meta.url)
const TOKENIZER_JSON = join(FIXTURES, 'text', 'qwen3-tokenizer.json')
const TOKENIZER_CONFIG = join(FIXTURES, 'text', 'qwen3-tokenizer_config.json')
const CORPUS = join(BENCH_DIR, 'data', 'corpus.txt')
export const LIMIT_BIN = join(ROOT, 'target', 'release', 'oxinfer-bench-tokenizers')

const ROUNDS = QUICK ? 2 : 7
/** Passes over the corpus per contender and round. */
const PASSES = QUICK ? 1 : 3

function corpusLines() {
  const text = readFileSync(CORPUS, 'utf8')
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

function chunks(lines, size) {
  const out = []
  for (let i = 0; i < lines.length; i += size) out.push(lines.slice(i, i + size))
  return out
}

/** Times `passes` passes of `fn` (one pass = the whole corpus); lines/s and JS-thread ms per pass. */
async function timePasses(fn, n, passes) {
  const out = []
  for (let p = 0; p < passes; p++) {
    const elu0 = performance.eventLoopUtilization()
    const t0 = now()
    await fn()
    const ms = now() - t0
    const elu = performance.eventLoopUtilization(elu0)
    out.push({ linesPerSec: (n / ms) * 1000, ms, jsThreadMs: elu.active })
  }
  return out
}

function runLimit(reps) {
  const p = spawnSync(LIMIT_BIN, [TOKENIZER_JSON, CORPUS, '1', String(reps)], { encoding: 'utf8', timeout: 300_000 })
  if (p.status !== 0) throw new Error(`${LIMIT_BIN} failed: ${p.stderr}`)
  return JSON.parse(p.stdout.trim().split('\n').pop())
}

export async function run() {
  if (!existsSync(LIMIT_BIN)) throw new Error(`build benchmark/rust-tokenizers first (run.mjs does): ${LIMIT_BIN} is missing`)
  const lines = corpusLines()
  const n = lines.length
  const ox = loadOxinfer()
  const { TokenizerLoader } = require('@lenml/tokenizers')
  const lenmlVersion = JSON.parse(readFileSync(join(ROOT, 'node_modules', '@lenml', 'tokenizers', 'package.json'), 'utf8')).version

  let t0 = now()
  const tok = await ox.Tokenizer.fromFile(TOKENIZER_JSON)
  const oxLoadMs = now() - t0
  t0 = now()
  const js = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(TOKENIZER_JSON, 'utf8')),
    tokenizerConfig: JSON.parse(readFileSync(TOKENIZER_CONFIG, 'utf8')),
  })
  const jsLoadMs = now() - t0

  // Agreement: the same ids, line by line.
  const batch = await tok.encodeBatch(lines)
  let same = 0
  let jsTokens = 0
  const mismatches = []
  for (let i = 0; i < n; i++) {
    const a = batch.row(i).ids
    const b = js.encode(lines[i])
    jsTokens += b.length
    let eq = a.length === b.length
    for (let k = 0; eq && k < b.length; k++) eq = a[k] === b[k]
    if (eq) same++
    else if (mismatches.length < 5) mismatches.push({ line: i + 1, text: lines[i].slice(0, 80), oxinfer: Array.from(a.slice(0, 12)), js: b.slice(0, 12) })
  }
  const agreement = { lines: n, identical: same, percent: round((100 * same) / n, 2), oxinferTokens: batch.ids.length, jsTokens, mismatches }
  log(`tokenizer: ${same}/${n} lines identical (${agreement.percent} %), ${batch.ids.length} tokens`)

  const c1024 = chunks(lines, 1024)
  const c256 = chunks(lines, 256)
  const contenders = {
    oxinferWhole: { label: 'oxinfer encodeBatch, whole corpus (5,000 lines)', fn: () => tok.encodeBatch(lines) },
    oxinfer1024: { label: 'oxinfer encodeBatch, batches of 1,024 (sequential)', fn: async () => { for (const c of c1024) await tok.encodeBatch(c) } },
    oxinfer256: { label: 'oxinfer encodeBatch, batches of 256 (sequential)', fn: async () => { for (const c of c256) await tok.encodeBatch(c) } },
    js: { label: `@lenml/tokenizers ${lenmlVersion} encode(), line by line`, fn: async () => { for (const l of lines) js.encode(l) } },
  }
  const keys = Object.keys(contenders)
  // Warm-up: JIT, caches, threads.
  for (const k of keys) await timePasses(contenders[k].fn, n, QUICK ? 1 : 2)

  // Fixed cost of one encodeBatch call (one short line), a diagnostic.
  const single = []
  for (let i = 0; i < (QUICK ? 5 : 20); i++) {
    const t = now()
    await tok.encodeBatch(['Hello world'])
    single.push(now() - t)
  }

  const samples = Object.fromEntries(keys.map((k) => [k, []]))
  const limitRounds = []
  const roundNoise = []
  for (let r = 0; r < ROUNDS; r++) {
    const order = keys.map((_, i) => keys[(i + r) % keys.length])
    const { result, foreignCores, discarded } = await cleanRound(`tokenizer round ${r + 1}`, async () => {
      const res = {}
      for (const k of order) res[k] = await timePasses(contenders[k].fn, n, PASSES)
      res.limit = runLimit(PASSES)
      return res
    })
    for (const k of keys) samples[k].push(...result[k])
    limitRounds.push(result.limit)
    roundNoise.push({ foreignCores, discarded })
    log(`tokenizer round ${r + 1}: ` + keys.map((k) => `${k} ${round(median(result[k].map((s) => s.linesPerSec)), 0)}`).join(', ') + `, limit ${round(result.limit.wholeCorpusLinesPerSec.median, 0)} lines/s (other processes ${foreignCores} cores)`)
  }

  const limitOf = (key) => median(limitRounds.map((l) => l[key].median))
  const limit = {
    label: 'Rust tokenizers 0.22.2 encode_batch, whole corpus (all cores)',
    wholeLinesPerSec: round(limitOf('wholeCorpusLinesPerSec'), 0),
    batch1024LinesPerSec: round(limitOf('batch1024LinesPerSec'), 0),
    batch256LinesPerSec: round(limitOf('batch256LinesPerSec'), 0),
    sequentialOneThreadLinesPerSec: round(limitOf('sequentialOneThreadLinesPerSec'), 0),
    roundMedians: limitRounds.map((l) => round(l.wholeCorpusLinesPerSec.median, 0)),
    tokenizerCloneDropMs: round(median(limitRounds.map((l) => l.tokenizerCloneDropMs.median)), 1),
    // Diagnostic: oxinfer's per-call path (clone the tokenizer per encode_batch) in plain Rust.
    clonePerCallWholeLinesPerSec: round(limitOf('clonePerCallWholeLinesPerSec'), 0),
    clonePerCallBatch256LinesPerSec: round(limitOf('clonePerCallBatch256LinesPerSec'), 0),
    loadMs: round(median(limitRounds.map((l) => l.loadMs)), 0),
    tokens: limitRounds[0].tokens,
    threads: limitRounds[0].threads,
  }
  const jsMedian = median(samples.js.map((s) => s.linesPerSec))
  const limitFor = { oxinferWhole: limit.wholeLinesPerSec, oxinfer1024: limit.batch1024LinesPerSec, oxinfer256: limit.batch256LinesPerSec }
  const rows = keys.map((k) => {
    const s = samples[k]
    const lps = median(s.map((x) => x.linesPerSec))
    return {
      key: k,
      label: contenders[k].label,
      linesPerSec: round(lps, 0),
      p10: round(s.map((x) => x.linesPerSec).sort((a, b) => a - b)[Math.floor(s.length * 0.1)], 0),
      msPerPass: round(median(s.map((x) => x.ms)), 1),
      jsThreadMsPerPass: round(median(s.map((x) => x.jsThreadMs)), 1),
      vsJs: round(lps / jsMedian, 2),
      vsLimitSameBatching: limitFor[k] ? round(lps / limitFor[k], 3) : null,
      vsLimitWhole: round(lps / limit.wholeLinesPerSec, 3),
      roundMedians: Array.from({ length: ROUNDS }, (_, r) => round(median(s.slice(r * PASSES, (r + 1) * PASSES).map((x) => x.linesPerSec)), 0)),
    }
  })
  // Paired by round: each round's oxinfer median over the same round's JS median
  // and Rust limit (run back to back), then the median over rounds; host noise
  // that slows a whole round cancels out.
  const jsRound = rows.find((r) => r.key === 'js').roundMedians
  for (const r of rows) {
    r.pairedVsJs = round(median(r.roundMedians.map((x, i) => x / jsRound[i])), 2)
    r.pairedVsLimitWhole = round(median(r.roundMedians.map((x, i) => x / limit.roundMedians[i])), 3)
  }
  const whole = rows.find((r) => r.key === 'oxinferWhole')
  const best = rows.filter((r) => r.key !== 'js').reduce((a, b) => (b.linesPerSec > a.linesPerSec ? b : a))
  return {
    lines: n,
    bytes: readFileSync(CORPUS).length,
    tokens: batch.ids.length,
    rounds: ROUNDS,
    passesPerRound: PASSES,
    load: { oxinferMs: round(oxLoadMs, 0), jsMs: round(jsLoadMs, 0), rustMs: limit.loadMs },
    agreement,
    contenders: rows,
    limit,
    singleLineEncodeBatchMs: { median: round(median(single), 2), min: round(Math.min(...single), 2) },
    roundNoise,
    targets: {
      wholeVsJs: whole.vsJs,
      wholeVsLimit: whole.vsLimitWhole,
      wholePairedVsJs: whole.pairedVsJs,
      wholePairedVsLimit: whole.pairedVsLimitWhole,
      bestKey: best.key,
      atLeast2_5xJs: whole.vsJs >= 2.5 && whole.pairedVsJs >= 2.5,
      within15PctOfLimit: whole.vsLimitWhole >= 0.85 && whole.pairedVsLimitWhole >= 0.85,
    },
  }
}
