// transformers.js (@huggingface/transformers) on oxinfer (issue #19): the same
// feature-extraction and text-classification pipelines, over tiny BERT models
// with a real WordPiece tokenizer (scripts/make_bert_fixtures.py), run once on
// onnxruntime-node and once with `import 'oxinfer/register'` first, each in its
// own process (the backend registry is per process). Outputs agree to 1e-5,
// and oxinfer batches 64 concurrent calls (its session's stats show fewer
// executions than requests). Timings are benchmark/transformers.mjs's.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { root } from './helpers'

interface Run {
  mode: string
  handler: string
  classifierHandler: string
  pooled: { dims: number[]; data: number[] }
  tokens: { dims: number[]; data: number[] }
  labels: { label: string; score: number }[][]
  concurrent: { n: number; data: number[] }
  stats: { success: number; executions: number; meanBatchRows: number; failures: Record<string, number> } | null
}

function run(mode: string): Run {
  const out = execFileSync(process.execPath, [join(root, '__test__', 'transformers-run.mjs'), mode, '64'], { cwd: root, encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } })
  return JSON.parse(out.trim().split('\n').pop()!) as Run
}

const close = (a: number[], b: number[]): void => {
  expect(a.length).toBe(b.length)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  expect(worst).toBeLessThanOrEqual(1e-5)
}

describe('transformers.js on oxinfer', () => {
  it('feature extraction and text classification give onnxruntime-node\'s outputs, and concurrent calls are batched', () => {
    const ort = run('onnxruntime-node')
    const ox = run('oxinfer')
    expect(ort.handler).toBe('OnnxruntimeSessionHandler')
    expect(ox.handler).toBe('OxinferSessionHandler')
    expect(ox.classifierHandler).toBe('OxinferSessionHandler')
    // Mean-pooled, normalised sentence embeddings of 6 texts (the empty one included), and one text's token vectors.
    expect(ox.pooled.dims).toEqual([6, 128])
    close(ox.pooled.data, ort.pooled.data)
    expect(ox.tokens.dims).toEqual(ort.tokens.dims)
    close(ox.tokens.data, ort.tokens.data)
    // Both labels of every text, in the same order.
    expect(ox.labels.map((l) => l.map((x) => x.label))).toEqual(ort.labels.map((l) => l.map((x) => x.label)))
    close(ox.labels.flat().map((x) => x.score), ort.labels.flat().map((x) => x.score))
    // All 64 concurrent results, batched with padding on oxinfer, one by one on onnxruntime-node.
    expect(ox.concurrent.data.length).toBe(64 * 128)
    close(ox.concurrent.data, ort.concurrent.data)
    // 1 call of 6 texts, 1 of one text and 64 concurrent ones; the 64 merged into a few batches (padded to their longest).
    expect(ox.stats!.success).toBe(66)
    expect(ox.stats!.failures).toEqual({})
    expect(ox.stats!.executions).toBeLessThan(66 - 32)
    expect(ox.stats!.meanBatchRows).toBeGreaterThan(4)
  }, 120_000)
})
