// Issue #19's benchmark: a transformers.js feature-extraction pipeline (tiny
// BERT, 128 tokens per call, mean pooling) on onnxruntime-node, its default,
// against the same pipeline on oxinfer (`import 'oxinfer/register'`, with
// dynamic batching through session_options.extra), each in its own process,
// one after the other in one run, at 1 and 32 concurrent calls: median
// calls/s of 5 rounds of 2 s, and the event loop's longest stall.
// `--model DIR` runs a larger model made by `scripts/make_bert_fixtures.py
// --shape minilm --out DIR/..` instead of the tiny BERT fixture.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

import { BENCH_DIR, log } from './util.mjs'

/** `model`: a model folder from `scripts/make_bert_fixtures.py --shape` (default: the tiny BERT fixture). */
export async function run({ model } = {}) {
  const levels = ['1', '32']
  const side = (mode) => JSON.parse(execFileSync(process.execPath, [join(BENCH_DIR, 'transformers-worker.mjs'), mode, ...levels], { encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1', ...(model ? { OXINFER_BENCH_MODEL: model } : {}) } }).trim().split('\n').pop())
  const ort = side('onnxruntime-node')
  const ox = side('oxinfer')
  const spin = side('oxinfer-spinning')
  const ratio = (a, c) => Math.round((a.levels[c].medianCallsPerSecond / ort.levels[c].medianCallsPerSecond) * 100) / 100
  const ratios = {}
  const spinningRatios = {}
  for (const c of levels) {
    ratios[c] = ratio(ox, c)
    spinningRatios[c] = ratio(spin, c)
    log(`transformers.js ${ox.model} c=${c}: oxinfer ${ox.levels[c].medianCallsPerSecond} calls/s (stall ${ox.levels[c].maxStallMs} ms), oxinfer spinning ${spin.levels[c].medianCallsPerSecond} (stall ${spin.levels[c].maxStallMs} ms), onnxruntime-node ${ort.levels[c].medianCallsPerSecond} calls/s (stall ${ort.levels[c].maxStallMs} ms): ${ratios[c]}x, spinning ${spinningRatios[c]}x`)
  }
  return { onnxruntimeNode: ort, oxinfer: ox, oxinferSpinning: spin, ratios, spinningRatios }
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  // node benchmark/transformers.mjs [--model DIR]
  const at = process.argv.indexOf('--model')
  process.stdout.write(`${JSON.stringify(await run({ model: at > 0 ? process.argv[at + 1] : undefined }), null, 1)}\n`)
}
