import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'

import { BatchEncoding, OxinferError, Tokenizer } from '../index.js'
import { fixture, readJson, rejectsWith } from './helpers'

const { lines, pairs } = readJson<{ lines: string[]; pairs: [string, string][] }>('text/lines.json')
const ref = readJson('text/reference.json')

describe('tokenizer parity with Python tokenizers (Qwen3 tokenizer.json)', () => {
  let tok: Tokenizer
  beforeAll(async () => {
    tok = await Tokenizer.fromFile(fixture('text/qwen3-tokenizer.json'))
  })

  it('gives the same ids, masks, type ids and offsets on every line', async () => {
    const b = await tok.encodeBatch(lines, { offsets: 'chars', typeIds: true })
    expect(b.rows).toBe(lines.length)
    expect(b.seqLen).toBe(0)
    lines.forEach((_, i) => {
      const r = b.row(i)
      const want = ref.lines[i]
      expect(Array.from(r.ids), `line ${i}`).toEqual(want.ids)
      expect(Array.from(r.attentionMask)).toEqual(want.attention_mask)
      expect(Array.from(r.typeIds!)).toEqual(want.type_ids)
      const offs: number[][] = []
      for (let k = 0; k < r.offsets!.length; k += 2) offs.push([r.offsets![k], r.offsets![k + 1]])
      expect(offs, `line ${i}`).toEqual(want.offsets)
    })
  })

  it('gives the same results for text pairs', async () => {
    const b = await tok.encodeBatch(
      pairs.map((p) => p[0]),
      { pairs: pairs.map((p) => p[1]), typeIds: true, offsets: 'chars' },
    )
    pairs.forEach((_, i) => {
      const r = b.row(i)
      expect(Array.from(r.ids), `pair ${i}`).toEqual(ref.pairs[i].ids)
      expect(Array.from(r.typeIds!)).toEqual(ref.pairs[i].type_ids)
      const offs: number[][] = []
      for (let k = 0; k < r.offsets!.length; k += 2) offs.push([r.offsets![k], r.offsets![k + 1]])
      expect(offs).toEqual(ref.pairs[i].offsets)
    })
  })

  it('truncates and pads a batch as Python does', async () => {
    for (const key of ['batch', 'batch_short'] as const) {
      const c = ref[key]
      const texts = (c.line_indices as number[]).map((i) => lines[i])
      const b = await tok.encodeBatch(texts, { maxLength: 32, padding: 'longest', typeIds: true })
      expect(b.seqLen).toBe(c.ids[0].length)
      for (let i = 0; i < texts.length; i++) {
        expect(Array.from(b.row(i).ids)).toEqual(c.ids[i])
        expect(Array.from(b.row(i).attentionMask)).toEqual(c.attention_mask[i])
      }
    }
    const c = ref.batch_pairs
    const ps = (c.pair_indices as number[]).map((i) => pairs[i])
    const b = await tok.encodeBatch(
      ps.map((p) => p[0]),
      { pairs: ps.map((p) => p[1]), maxLength: 32, padding: 'longest', typeIds: true },
    )
    for (let i = 0; i < ps.length; i++) {
      expect(Array.from(b.row(i).ids)).toEqual(c.ids[i])
      expect(Array.from(b.row(i).typeIds!)).toEqual(c.type_ids[i])
    }
  })

  it('decodes back to the (NFC-normalised) text', () => {
    for (let i = 0; i < 40; i++) expect(tok.decode(ref.lines[i].ids)).toBe(ref.decoded[i])
  })

  it('counts offsets in UTF-16 units by default, so text.slice works in JS', async () => {
    const text = 'naïve 🦀 crab 日本'
    const e = await tok.encode(text, undefined, { offsets: 'utf16' })
    const pieces: string[] = []
    for (let k = 0; k < e.offsets!.length; k += 2) pieces.push(text.slice(e.offsets![k], e.offsets![k + 1]))
    expect(pieces.join('').replace(/\s/g, '')).toContain('crab')
    expect(e.offsets![e.offsets!.length - 1]).toBe(text.length)
  })

  it('pads to max_length, gives int64 ids and model tensors', async () => {
    const b = await tok.encodeBatch(['short', 'a little longer text here'], { maxLength: 16, padding: 'max_length', ids: 'int64', typeIds: true })
    expect(b).toBeInstanceOf(BatchEncoding)
    expect(b.seqLen).toBe(16)
    expect(b.ids).toBeInstanceOf(BigInt64Array)
    const t = b.tensors()
    expect(t.input_ids.dims).toEqual([2, 16])
    expect(t.attention_mask.type).toBe('int64')
    expect(t.token_type_ids.dims).toEqual([2, 16])
    expect(() => new BatchEncoding([1, 0, new Int32Array(1), new Uint8Array(1), null, null, new Uint32Array([0, 1])]).tensors()).toThrow(OxinferError)
  })

  it('handles empty input', async () => {
    const b = await tok.encodeBatch([])
    expect(b.rows).toBe(0)
    const e = await tok.encode('')
    expect(e.ids.length).toBe(0)
  })

  it('bad input: non-string text, oversized text, bad options, bad files', async () => {
    let e = await rejectsWith(tok.encodeBatch(['ok', 42 as never, 'fine']), 'ERR_INVALID_INPUT')
    expect([e.row, e.field]).toEqual([1, 'text'])
    e = await rejectsWith(tok.encodeBatch(['ok', 'x'.repeat(50)], { maxChars: 10 }), 'ERR_INVALID_INPUT')
    expect(e.row).toBe(1)
    e = await rejectsWith(tok.encodeBatch(['a'], { pairs: [null as never] }), 'ERR_INVALID_INPUT')
    expect(e.field).toBe('pair')
    await rejectsWith(tok.encodeBatch(['a'], { pairs: ['a', 'b'] }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(tok.encodeBatch('text' as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(tok.encodeBatch(['a'], { padding: 'max_length' }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(tok.encodeBatch(['a'], { padd: true } as never), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(tok.encodeBatch(['a'], { maxLength: 0 }), 'ERR_INVALID_ARGUMENT')
    expect((await rejectsWith(Tokenizer.fromFile(fixture('missing.json')), 'ERR_FILE')).path).toBe(fixture('missing.json'))
    await rejectsWith(Tokenizer.fromJSON('{"not": "a tokenizer"}'), 'ERR_MODEL_LOAD')
    await rejectsWith(Tokenizer.fromJSON(new Uint8Array(readFileSync(fixture('tiny_mlp.onnx')))), 'ERR_MODEL_LOAD')
    expect(() => tok.decode([-1])).toThrow(OxinferError)
    expect(tok.tokenToId('<|endoftext|>')).toBe(151643)
    expect(tok.idToToken(151643)).toBe('<|endoftext|>')
    expect(tok.vocabSize).toBe(ref.meta.vocab_size_with_added)
  })
})
