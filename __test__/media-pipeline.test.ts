import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { ImageProcessor, Pipeline, Session, Tokenizer, type PipelineResult, type PipelineRowError } from '../index.js'
import { fixture, readJson, rejectsWith, root } from './helpers'

describe('the tokenize stage in a pipeline spec (examples/text)', () => {
  it('tokenises as Tokenizer does and feeds the model the same tensors', async () => {
    const p = await Pipeline.load(join(root, 'examples/text/pipeline.json'))
    const { lines } = readJson<{ lines: string[] }>('text/lines.json')
    const texts = lines.slice(0, 40)
    const out = (await p.runBatch(texts.map((text) => ({ text })))) as PipelineResult[]
    const tok = await Tokenizer.fromFile(fixture('text/qwen3-tokenizer.json'))
    const enc = await tok.encodeBatch(texts, { maxLength: 64, padding: 'longest', ids: 'int64' })
    const s = await Session.create(join(root, 'examples/text/bag_of_embeddings.onnx'))
    const t = enc.tensors()
    const { logits } = await s.run({ input_ids: t.input_ids, attention_mask: t.attention_mask })
    out.forEach((r, i) => {
      const l = logits.data as Float32Array
      const e0 = Math.exp(l[2 * i] - Math.max(l[2 * i], l[2 * i + 1]))
      const e1 = Math.exp(l[2 * i + 1] - Math.max(l[2 * i], l[2 * i + 1]))
      expect(r.scores[0]).toBeCloseTo(e0 / (e0 + e1), 6)
      expect(r.label).toBe(e1 > e0 ? 'positive' : 'negative')
    })
    await s.dispose()
    // Missing or non-string text is a row error.
    let e = await rejectsWith(p.run({ text: null }), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([0, 'text'])
    e = await rejectsWith(p.runBatch([{ text: 'ok' }, { text: 42 }]), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([1, 'text'])
    const mixed = await p.runBatch([{ text: 'fine' }, {}, { text: 'also fine' }], { errors: 'return' })
    expect('error' in mixed[1] && (mixed[1] as PipelineRowError).error.field).toBe('text')
    expect((mixed[2] as PipelineResult).label).toBeTypeOf('string')
    await p.dispose()
  })

  it('a missing tokenizer file is ERR_FILE with its path; a wrong tensor assembly is a spec error naming the stage', async () => {
    const spec = JSON.parse(readFileSync(join(root, 'examples/text/pipeline.json'), 'utf8'))
    spec.preprocess[0].tokenizer = 'missing.json'
    let e = await rejectsWith(Pipeline.create(spec, { baseDir: join(root, 'examples/text') }), 'ERR_FILE')
    expect(e.path).toBe(join(root, 'examples/text/missing.json'))
    spec.preprocess[0].tokenizer = 'pipeline.json'
    e = await rejectsWith(Pipeline.create(spec, { baseDir: join(root, 'examples/text') }), 'ERR_INVALID_SPEC')
    expect([e.stage, e.jsonPath]).toEqual(['preprocess[0] (tokenize)', 'preprocess[0].tokenizer'])
    const spec2 = JSON.parse(readFileSync(join(root, 'examples/text/pipeline.json'), 'utf8'))
    spec2.features[0].tensor = 'text.nope'
    e = await rejectsWith(Pipeline.create(spec2, { baseDir: join(root, 'examples/text') }), 'ERR_INVALID_SPEC')
    expect(e.stage).toMatch(/features\[0\]/)
  })
})

describe('the image stage in a pipeline spec', () => {
  const spec = {
    version: 1 as const,
    model: 'channel_stats.onnx',
    fields: [{ name: 'photo', type: 'image' as const }],
    preprocess: [{ op: 'image' as const, field: 'photo', resize: { width: 32, height: 32 } }],
    features: [{ input: 'pixels', tensor: 'photo.pixels' }],
    output: { tensor: 'stats' },
  }

  it('decodes and transforms images natively, as ImageProcessor does, and bad images are row errors', async () => {
    const p = await Pipeline.create(spec, { baseDir: join(root, 'examples/image') })
    const imgs = ['china.jpg', 'flower.jpg', 'rgba_37x23.png', 'gray_40x30.png'].map((f) => new Uint8Array(readFileSync(fixture(`images/${f}`))))
    const out = (await p.runBatch(imgs.map((photo) => ({ photo })))) as PipelineResult[]
    const px = await new ImageProcessor({ resize: { width: 32, height: 32 } }).run(imgs)
    const d = px.data as Float32Array
    imgs.forEach((_, i) => {
      const mean = (c: number) => {
        let s = 0
        for (let k = 0; k < 1024; k++) s += d[i * 3072 + c * 1024 + k]
        return s / 1024
      }
      expect(out[i].scores[0]).toBeCloseTo((mean(0) + mean(1) + mean(2)) / 3, 5)
      expect(out[i].scores[1]).toBeCloseTo(mean(0) - mean(2), 5)
    })
    const mixed = await p.runBatch([{ photo: imgs[0] }, { photo: new Uint8Array([1, 2, 3]) }, { photo: 'x' }, {}], { errors: 'return' })
    expect('error' in mixed[0]).toBe(false)
    for (const i of [1, 2, 3]) expect((mixed[i] as PipelineRowError).error.field).toBe('photo')
    await p.dispose()
  })

  it('with batching, merges runs when the stage makes a fixed size, and runs each alone when it does not', async () => {
    const imgs = ['china.jpg', 'gray_40x30.png'].map((f) => new Uint8Array(readFileSync(fixture(`images/${f}`))))
    const batching = { maxBatchSize: 8, maxDelayMicros: 20_000 }
    const fixed = await Pipeline.create(spec, { baseDir: join(root, 'examples/image'), batching })
    const free = await Pipeline.create({ ...spec, preprocess: [{ op: 'image' as const, field: 'photo' }] }, { baseDir: join(root, 'examples/image'), batching })
    for (const [p, merged] of [[fixed, 2], [free, 1]] as const) {
      const sizes: number[] = []
      // Both in one turn: the first holds its batch open for the second.
      const out = await Promise.all(imgs.map((photo) => p.run({ photo }, { onTiming: (t) => sizes.push(t.batchRequests) })))
      expect(sizes).toEqual([merged, merged])
      // Each image's own result, whether it ran merged or alone.
      const alone = await Promise.all(imgs.map((photo) => p.runBatch([{ photo }])))
      out.forEach((r, i) => r.scores.forEach((x, j) => expect(x).toBeCloseTo((alone[i][0] as PipelineResult).scores[j], 5)))
    }
    await Promise.all([fixed.dispose(), free.dispose()])
  })
})
