// One run of transformers.js (@huggingface/transformers) on the tiny BERT
// fixtures, for __test__/transformers.test.ts and benchmark/transformers.mjs:
// with `oxinfer` as argv[2], oxinfer/register is imported first, so that
// transformers.js's sessions run on oxinfer; otherwise on onnxruntime-node.
// Prints one JSON line: pipeline outputs, those of `concurrent` calls made at
// once, and on oxinfer the session's stats.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const [mode = 'onnxruntime-node', concurrentArg = '64'] = process.argv.slice(2)
if (mode === 'oxinfer') await import('oxinfer/register')
const { pipeline, env } = await import('@huggingface/transformers')

env.allowRemoteModels = false
env.localModelPath = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bert') + '/'
const TEXTS = [
  'Redistribution and use in source and binary forms, with or without modification, are permitted.',
  'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.',
  'hello world',
  'Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in compliance with the License.',
  'If you use the latter option, you must take reasonably prudent steps.',
  '',
]
// Padding-aware batching for concurrent calls of different lengths (oxinfer's own option, through `extra`).
const pad = { padAxis: 1 }
const batching = { maxBatchSize: 64, inputs: { input_ids: pad, attention_mask: pad, token_type_ids: pad }, outputs: { last_hidden_state: pad } }
const session_options = mode === 'oxinfer' ? { extra: { batching } } : {}
const fe = await pipeline('feature-extraction', 'tiny-bert', { dtype: 'fp32', session_options })
const cls = await pipeline('text-classification', 'tiny-bert-sst', { dtype: 'fp32', session_options: mode === 'oxinfer' ? { extra: { batching: { maxBatchSize: 64, inputs: { input_ids: pad, attention_mask: pad, token_type_ids: pad } } } } : {} })

const pooled = await fe(TEXTS, { pooling: 'mean', normalize: true })
const tokens = await fe(TEXTS[0])
const labels = await cls(TEXTS, { top_k: null })

// Concurrent single-text calls, as a server's requests arrive (timed by benchmark/transformers.mjs, not here).
const n = Number(concurrentArg)
const many = await Promise.all(Array.from({ length: n }, (_, i) => fe(TEXTS[i % TEXTS.length], { pooling: 'mean', normalize: true })))
const handler = fe.model.sessions.model.handler
console.log(
  JSON.stringify({
    mode,
    handler: handler.constructor.name,
    classifierHandler: cls.model.sessions.model.handler.constructor.name,
    pooled: { dims: pooled.dims, data: Array.from(pooled.data) },
    tokens: { dims: tokens.dims, data: Array.from(tokens.data) },
    labels,
    concurrent: { n, data: many.flatMap((t) => Array.from(t.data)) },
    stats: typeof handler.stats === 'function' ? handler.stats() : null,
  }),
)
