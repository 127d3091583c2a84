// A text pipeline from a JSON spec: the tokenize stage (Hugging Face
// tokenizers, natively, a batch in parallel) feeds a model through stage-made
// tensors, and post-processing returns labels. Run: node examples/text/classify.mjs
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Pipeline } from '../../index.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const pipeline = await Pipeline.load(join(here, 'pipeline.json'))
const texts = [
  'oxinfer runs the tokenizer and the model in Rust, off the event loop.',
  'Ceci est une phrase en français.',
  '日本語のテキストもトークン化できます。',
  'Short one.',
]
const results = await pipeline.runBatch(texts.map((text) => ({ text })), { timings: true })
for (const [i, r] of results.entries()) console.log(`${r.label} (${r.score.toFixed(3)})  ${texts[i]}`)
console.log('native stage times (µs):', results.timings)
await pipeline.dispose()
