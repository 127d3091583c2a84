// Graphs from JS: specs bound to real models (given Sessions or files),
// outputs equal to the same models wired by hand, shared nodes run once,
// conditional skips reported, switches chosen per request, concurrent
// requests batched at a model node, every invalid spec refused naming its
// nodes, and the real OCR chain (PaddleOCR detection, orientation and
// recognition, with the native steps between the hops) reading rendered text.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Graph, type GraphSpec, type GraphTiming, IMAGENET, ImageProcessor, Pipeline, Session, Tensor } from '../index.js'
import { fixture, readJson, rejectsWith, root } from './helpers'

const MLP = fixture('tiny_mlp.onnx')
const x16 = (rows: number, seed = 0) => new Tensor('float32', Float32Array.from({ length: rows * 16 }, (_, i) => Math.sin(seed * 97 + i)), [rows, 16])

/** mlp -> (first 14 columns of x ++ mlp.y) -> mlp, and a few ops on the way. */
const chain = (): GraphSpec => ({
  version: 1,
  inputs: { x: { type: 'float32', shape: [-1, 16] } },
  nodes: [
    { name: 'first', kind: 'model', model: 'mlp', inputs: { x: 'x' } },
    { name: 'head', kind: 'op', op: 'slice', axis: 1, start: 0, end: 14, inputs: ['x'] },
    { name: 'joined', kind: 'op', op: 'concat', axis: 1, inputs: ['head.y', 'first.y'] },
    { name: 'second', kind: 'model', model: 'mlp', inputs: { x: 'joined.y' } },
    { name: 'sum', kind: 'op', op: 'add', inputs: ['first.y', 'second.y'] },
    { name: 'best', kind: 'op', op: 'argmax', axis: 1, inputs: ['sum.y'] },
    { name: 'loud', kind: 'op', op: 'mul', scalar: 2, inputs: ['sum.y'], when: { input: 'sum.y', op: '>', value: 1000 } },
  ],
  outputs: { sum: 'sum.y', best: 'best.y', loud: 'loud.y' },
})

describe('Graph', () => {
  it('gives what the same models wired by hand give, with skipped outputs as null', async () => {
    const s = await Session.create(MLP)
    const g = await Graph.create(chain(), { models: { mlp: s } })
    try {
      expect(g.inputs).toEqual([{ name: 'x', type: 'float32', dims: [-1, 16] }])
      expect(g.outputs.map((o) => o.name).sort()).toEqual(['best', 'loud', 'sum'])
      const x = x16(3, 1)
      let t: GraphTiming | undefined
      const r = await g.run({ x }, { onTiming: (v) => (t = v) })
      // By hand.
      const y1 = (await s.run({ x })).y.data as Float32Array
      const xd = x.data as Float32Array
      const joined = new Float32Array(3 * 16)
      for (let i = 0; i < 3; i++) {
        joined.set(xd.subarray(i * 16, i * 16 + 14), i * 16)
        joined.set(y1.subarray(i * 2, i * 2 + 2), i * 16 + 14)
      }
      const y2 = (await s.run({ x: new Tensor('float32', joined, [3, 16]) })).y.data as Float32Array
      const sum = y1.map((v, i) => v + y2[i])
      expect(r.sum!.dims).toEqual([3, 2])
      expect(Array.from(r.sum!.data as Float32Array)).toEqual(Array.from(sum))
      expect(Array.from(r.best!.data as BigInt64Array)).toEqual([0, 1, 2].map((i) => BigInt(sum[2 * i + 1] > sum[2 * i] ? 1 : 0)))
      expect(r.loud).toBeNull()
      // Where the time went: each node once, the gated one skipped; engine time is the two model runs'.
      expect(t!.skipped).toEqual(['loud'])
      expect(t!.nodes.map((n) => [n.node, n.ran, n.runs])).toEqual([
        ['first', true, 1],
        ['head', true, 0],
        ['joined', true, 0],
        ['second', true, 1],
        ['sum', true, 0],
        ['best', true, 0],
        ['loud', false, 0],
      ])
      expect(t!.engineUs).toBe(t!.nodes.reduce((a, n) => a + n.engineUs, 0))
      expect(t!.wallUs).toBeGreaterThanOrEqual(t!.engineUs)
    } finally {
      await g.dispose()
      // A given session stays open.
      expect((await s.run({ x: x16(1) })).y.dims).toEqual([1, 2])
      await s.dispose()
    }
  })

  it('runs a node that several consume once per request, and batches concurrent requests at a model node', async () => {
    const s = await Session.create(MLP, { batching: { maxBatchSize: 64, maxDelayMicros: 2000 } })
    const spec: GraphSpec = {
      version: 1,
      inputs: { x: { type: 'float32', shape: [-1, 16] } },
      nodes: [
        { name: 'shared', kind: 'model', model: 'mlp', inputs: { x: 'x' } },
        { name: 'a', kind: 'op', op: 'sigmoid', inputs: ['shared.y'] },
        { name: 'b', kind: 'op', op: 'softmax', axis: 1, inputs: ['shared.y'] },
      ],
      outputs: { a: 'a.y', b: 'b.y' },
    }
    const g = await Graph.create(spec, { models: { mlp: s } })
    try {
      const timings: GraphTiming[] = []
      const rs = await Promise.all(Array.from({ length: 32 }, (_, i) => g.run({ x: x16(1, i) }, { onTiming: (t) => timings.push(t) })))
      // Each request: the shared model ran once, for both consumers.
      for (const t of timings) expect(t.nodes.filter((n) => n.node === 'shared').map((n) => n.runs)).toEqual([1])
      // Concurrent requests were merged into batches at the model node.
      expect(Math.max(...timings.map((t) => t.nodes[0].batchRows))).toBeGreaterThan(1)
      // And every request got its own answer.
      for (let i = 0; i < 32; i++) {
        const y = (await s.run({ x: x16(1, i) })).y.data as Float32Array
        const a = rs[i].a!.data as Float32Array
        expect(a[0]).toBeCloseTo(1 / (1 + Math.exp(-y[0])), 6)
      }
    } finally {
      await g.dispose()
      await s.dispose()
    }
  })

  it('runs a graph measured fast on the JS thread when idle, with the same results', async () => {
    const g = await Graph.create(chain(), { models: { mlp: MLP } })
    try {
      const x = x16(1, 3)
      const first = await g.run({ x })
      // Queued at first (nothing is measured yet), then inline: no queue at any model node.
      const queues: number[] = []
      for (let i = 0; i < 30; i++) {
        const r = await g.run({ x }, { onTiming: (t) => queues.push(Math.max(...t.nodes.map((n) => n.queueUs))) })
        expect(Array.from(r.sum!.data as Float32Array)).toEqual(Array.from(first.sum!.data as Float32Array))
      }
      expect(queues.filter((q) => q === 0).length).toBeGreaterThanOrEqual(20)
      // Concurrent requests are not inline: they queue, and still get their own answers.
      const many = await Promise.all(Array.from({ length: 16 }, (_, i) => g.run({ x: x16(1, i) })))
      for (let i = 0; i < 16; i++) expect(Array.from(many[i].sum!.data as Float32Array)).toEqual(Array.from((await g.run({ x: x16(1, i) })).sum!.data as Float32Array))
    } finally {
      await g.dispose()
    }
  })

  it('runs a job over a source of requests, results in order, with progress', async () => {
    const g = await Graph.create(chain(), { models: { mlp: MLP } })
    try {
      function* source() {
        for (let i = 0; i < 40; i++) yield { x: x16(2, i) }
      }
      const seen: number[] = []
      const job = g.runJob(source(), { concurrency: 8, onProgress: (p) => seen.push(p.rowsDone) })
      let i = 0
      for await (const r of job) {
        const want = await g.run({ x: x16(2, i++) })
        expect(Array.from(r.sum!.data as Float32Array)).toEqual(Array.from(want.sum!.data as Float32Array))
      }
      expect(i).toBe(40)
      expect((await job.done).rows).toBe(80)
      expect(seen.at(-1)).toBe(80)
      expect(() => g.runJob('file.csv' as never)).toThrow(/iterable/)
    } finally {
      await g.dispose()
    }
  })

  it('picks a switch variant per request and records the decisions', async () => {
    const spec: GraphSpec = {
      version: 1,
      inputs: { x: { type: 'float32', shape: [-1, 16] } },
      nodes: [
        {
          name: 'pick',
          kind: 'switch',
          inputs: { x: 'x' },
          variants: [
            { model: 'accurate', quality: 0.9 },
            { model: 'fast', quality: 0.5 },
          ],
          policy: { kind: 'explicit' },
        },
      ],
      outputs: { y: 'pick.y' },
    }
    const g = await Graph.create(spec, { models: { accurate: MLP, fast: MLP } })
    try {
      const seen: (number | undefined)[] = []
      await g.run({ x: x16(1) }, { onTiming: (t) => seen.push(t.nodes[0].variant) })
      await g.run({ x: x16(1) }, { variants: { pick: 'fast' }, onTiming: (t) => seen.push(t.nodes[0].variant) })
      await g.run({ x: x16(1) }, { variants: { pick: 0 }, onTiming: (t) => seen.push(t.nodes[0].variant) })
      expect(seen).toEqual([0, 1, 0])
      const [stats] = g.switchStats()
      expect(stats).toMatchObject({ node: 'pick', policy: 'explicit', decisions: 3 })
      expect(stats.variants.map((v) => [v.name, v.chosen])).toEqual([
        ['accurate', 2],
        ['fast', 1],
      ])
      await rejectsWith(g.run({ x: x16(1) }, { variants: { pick: 'slow' } }), 'ERR_INVALID_ARGUMENT')
    } finally {
      await g.dispose()
    }
  })

  it('refuses every invalid spec with ERR_INVALID_SPEC naming the nodes, located in its file', async () => {
    const bad = async (mutate: (s: any) => void, pattern: RegExp) => {
      const s: any = chain()
      mutate(s)
      const e = await rejectsWith(Graph.create(s, { models: { mlp: MLP } }), 'ERR_INVALID_SPEC')
      expect(e.message).toMatch(pattern)
    }
    await bad((s) => (s.nodes[0].inputs.x = 'second.y'), /cycle: .*first.*second|second.*first/)
    await bad((s) => (s.nodes[4].inputs[1] = 'nowhere.y'), /nowhere/)
    await bad((s) => (s.outputs.z = 'first.nope'), /first.*nope|nope/)
    await bad((s) => (s.nodes[3].inputs.x = 'first.y'), /first\.y -> second\.x/)
    await bad((s) => (s.nodes[1].op = 'frobnicate'), /frobnicate/)
    await bad((s) => s.nodes.push({ ...s.nodes[0] }), /first/)
    await bad((s) => (s.version = 2), /version/)
    await bad((s) => (s.nodes[5].when = { input: 'sum.y', op: '~', value: 1 }), /when|op/)
    // In a file: the line of the value at fault.
    const dir = mkdtempSync(join(tmpdir(), 'oxinfer-graph-'))
    try {
      const s: any = chain()
      s.nodes[3].inputs.x = 'first.y'
      const file = join(dir, 'graph.json')
      writeFileSync(file, JSON.stringify(s, null, 2))
      writeFileSync(join(dir, 'mlp'), readFileSync(MLP))
      const e = await rejectsWith(Graph.create(file), 'ERR_INVALID_SPEC')
      expect(e.message).toMatch(/first\.y -> second\.x/)
      expect(e.message).toContain(file)
      expect(e.line).toBeGreaterThan(1)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    // Models: one the spec does not name, one it names that is missing, and what is neither.
    await rejectsWith(Graph.create(chain(), { models: { mlp: MLP, other: MLP } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Graph.create(chain(), { baseDir: tmpdir() }), 'ERR_FILE')
    await rejectsWith(Graph.create(chain(), { models: { mlp: 5 as never } }), 'ERR_INVALID_ARGUMENT')
    await rejectsWith(Graph.create(42 as never), 'ERR_INVALID_ARGUMENT')
  })

  it('refuses bad inputs and runs after dispose with coded errors', async () => {
    const g = await Graph.create(chain(), { models: { mlp: MLP } })
    await rejectsWith(g.run({ y: x16(1) }), 'ERR_INVALID_INPUT')
    await rejectsWith(g.run({ x: new Tensor('float32', new Float32Array(3), [1, 3]) }), 'ERR_INVALID_INPUT')
    await rejectsWith(g.run({ x: x16(1) }, { colour: 1 } as never), 'ERR_INVALID_ARGUMENT')
    const ac = new AbortController()
    ac.abort()
    await rejectsWith(g.run({ x: x16(1) }, { signal: ac.signal }), 'ERR_ABORTED')
    // Still serving after all that.
    expect((await g.run({ x: x16(2) })).sum!.dims).toEqual([2, 2])
    await g.dispose()
    await rejectsWith(g.run({ x: x16(1) }), 'ERR_DISPOSED')
  })
})

describe('tokenization as a graph node', () => {
  it('tokenizes once for two models, as the text pipeline does', async () => {
    const tokenizer = fixture('text/qwen3-tokenizer.json')
    const model = join(root, 'examples', 'text', 'bag_of_embeddings.onnx')
    const spec: GraphSpec = {
      version: 1,
      inputs: { text: { type: 'string', shape: [-1] } },
      nodes: [
        { name: 'tok', kind: 'op', op: 'tokenize', tokenizer, maxLength: 64, inputs: ['text'] },
        { name: 'a', kind: 'model', model: 'first', inputs: { input_ids: 'tok.input_ids', attention_mask: 'tok.attention_mask' } },
        { name: 'b', kind: 'model', model: 'second', inputs: { input_ids: 'tok.input_ids', attention_mask: 'tok.attention_mask' } },
        { name: 'pa', kind: 'op', op: 'softmax', inputs: ['a.logits'] },
        { name: 'pb', kind: 'op', op: 'softmax', inputs: ['b.logits'] },
      ],
      outputs: { a: 'pa.y', b: 'pb.y', ids: 'tok.input_ids' },
    }
    const g = await Graph.create(spec, { models: { first: model, second: model } })
    const p = await Pipeline.load(join(root, 'examples', 'text', 'pipeline.json'))
    try {
      const texts = ['a fine day', 'nothing works and everything is late', '']
      let t: GraphTiming | undefined
      const r = await g.run({ text: new Tensor('string', texts, [3]) }, { onTiming: (v) => (t = v) })
      expect(t!.nodes.filter((n) => n.node === 'tok')).toHaveLength(1)
      const want = await p.runBatch(texts.map((text) => ({ text })))
      const a = Array.from(r.a!.data as Float32Array)
      const b = Array.from(r.b!.data as Float32Array)
      expect(a).toEqual(b)
      want.forEach((w, i) => (w.scores as number[]).forEach((v, k) => expect(a[i * 2 + k]).toBeCloseTo(v, 5)))
      expect(r.ids!.dims[0]).toBe(3)
      // A tokenizer file that is not there fails at build with ERR_FILE.
      await rejectsWith(Graph.create({ ...spec, nodes: [{ ...spec.nodes[0], tokenizer: 'nope.json' }, ...spec.nodes.slice(1)] }, { models: { first: model, second: model } }), 'ERR_FILE')
    } finally {
      await g.dispose()
      await p.dispose()
    }
  })
})

describe('image preprocessing as a graph node', () => {
  it('gives what ImageProcessor gives, with the pipeline image stage options', async () => {
    const opts = { resize: { shorter: 40 }, centerCrop: { width: 32, height: 32 }, normalize: IMAGENET }
    const spec: GraphSpec = {
      version: 1,
      inputs: { photo: { type: 'uint8', shape: [-1] } },
      nodes: [{ name: 'pre', kind: 'op', op: 'image', ...opts, inputs: ['photo'] }],
      outputs: { pixels: 'pre.y' },
    }
    const g = await Graph.create(spec)
    try {
      expect(g.outputs[0]).toMatchObject({ name: 'pixels', type: 'float32' })
      const bytes = readFileSync(fixture('images/china.jpg'))
      const r = await g.run({ photo: new Tensor('uint8', new Uint8Array(bytes), [bytes.length]) })
      const want = await new ImageProcessor(opts).run([new Uint8Array(bytes)])
      expect(r.pixels!.dims).toEqual(want.dims)
      expect(Array.from(r.pixels!.data as Float32Array)).toEqual(Array.from(want.data as Float32Array))
      // Options the image stage refuses are spec errors here too.
      await rejectsWith(Graph.create({ ...spec, nodes: [{ ...spec.nodes[0], resize: { width: 0, height: 3 } }] }), 'ERR_INVALID_SPEC')
      await rejectsWith(g.run({ photo: new Tensor('uint8', new Uint8Array([1, 2, 3]), [3]) }), 'ERR_INVALID_INPUT')
    } finally {
      await g.dispose()
    }
  })
})

describe('pipelines as graph nodes', () => {
  it('runs a pipeline node on record fields as tensors, with what pipeline.run gives', async () => {
    const { records } = readJson<{ records: Record<string, unknown>[] }>('penguins/records.json')
    const rows = records.slice(0, 20)
    const p = await Pipeline.load(fixture('penguins/pipeline.json'))
    const spec: GraphSpec = {
      version: 1,
      inputs: {
        island: { type: 'string', shape: [-1] },
        bill_length_mm: { type: 'float64', shape: [-1] },
        bill_depth_mm: { type: 'float64', shape: [-1] },
        flipper_length_mm: { type: 'float64', shape: [-1] },
        body_mass_g: { type: 'float64', shape: [-1] },
        sex: { type: 'string', shape: [-1] },
      },
      nodes: [
        { name: 'species', kind: 'model', model: 'penguins', inputs: { island: 'island', bill_length_mm: 'bill_length_mm', bill_depth_mm: 'bill_depth_mm', flipper_length_mm: 'flipper_length_mm', body_mass_g: 'body_mass_g', sex: 'sex' } },
        { name: 'best', kind: 'op', op: 'argmax', axis: 1, inputs: ['species.scores'] },
      ],
      outputs: { label: 'species.label', best: 'best.y', scores: 'species.scores' },
    }
    const g = await Graph.create(spec, { models: { penguins: p } })
    try {
      const col = (k: string) => rows.map((r) => r[k])
      const num = (k: string) => new Tensor('float64', Float64Array.from(col(k).map((v) => (typeof v === 'number' ? v : Number.NaN))), [rows.length])
      const str = (k: string) => new Tensor('string', col(k).map((v) => (v == null ? '' : String(v))), [rows.length])
      const r = await g.run({ island: str('island'), sex: str('sex'), bill_length_mm: num('bill_length_mm'), bill_depth_mm: num('bill_depth_mm'), flipper_length_mm: num('flipper_length_mm'), body_mass_g: num('body_mass_g') })
      const want = await p.runBatch(rows)
      expect(r.label!.data).toEqual(want.map((w) => w.label))
      const best = Array.from(r.best!.data as BigInt64Array).map(Number)
      expect(best).toEqual(want.map((w) => (w.scores as number[]).indexOf(Math.max(...(w.scores as number[])))))
      // A field of the wrong kind is an input error naming it.
      const e = await rejectsWith(g.run({ island: num('bill_length_mm'), sex: str('sex'), bill_length_mm: num('bill_length_mm'), bill_depth_mm: num('bill_depth_mm'), flipper_length_mm: num('flipper_length_mm'), body_mass_g: num('body_mass_g') }), 'ERR_INVALID_INPUT')
      expect(e.message).toMatch(/island/)
    } finally {
      await g.dispose()
      await p.dispose()
    }
  })
})

describe('the OCR chain (examples/ocr/graph.json)', () => {
  const A = join(root, 'node_modules', '@gutenye', 'ocr-models', 'assets')
  const models = { det: join(A, 'ch_PP-OCRv4_det_infer.onnx'), cls: join(A, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), rec: join(A, 'ch_PP-OCRv4_rec_infer.onnx') }
  const expected = readJson<Record<string, string[]>>('ocr/expected.json')
  const image = (name: string) => {
    const bytes = readFileSync(fixture(join('ocr', name)))
    return { image: new Tensor('uint8', new Uint8Array(bytes), [bytes.length]) }
  }

  it('reads the text of rendered images, turning the upside-down one upright natively', async () => {
    const g = await Graph.create(join(root, 'examples', 'ocr', 'graph.json'), { models })
    try {
      for (const [name, lines] of Object.entries(expected)) {
        let t: GraphTiming | undefined
        const r = await g.run(image(name), { onTiming: (v) => (t = v) })
        expect(r.text!.data, name).toEqual(lines)
        expect(r.boxes!.dims, name).toEqual([lines.length, 5])
        expect(Array.from(r.rotated!.data as Uint8Array), name).toEqual(lines.map(() => (name === 'upside_down.png' ? 1 : 0)))
        for (const c of r.confidence!.data as Float32Array) expect(c).toBeGreaterThan(0.9)
        // Three model hops, one JS crossing.
        expect(t!.nodes.filter((n) => n.runs > 0).map((n) => n.node)).toEqual(['det', 'cls', 'rec'])
      }
      // Concurrent requests over different images keep their own answers.
      const names = Object.keys(expected)
      const many = await Promise.all(Array.from({ length: 9 }, (_, i) => g.run(image(names[i % 3]))))
      many.forEach((r, i) => expect(r.text!.data).toEqual(expected[names[i % 3]]))
      // Bytes that are not an image: a clear input error, and the graph goes on.
      await rejectsWith(g.run({ image: new Tensor('uint8', new Uint8Array([1, 2, 3]), [3]) }), 'ERR_INVALID_INPUT')
      expect((await g.run(image('one_line.png'))).text!.data).toEqual(expected['one_line.png'])
    } finally {
      await g.dispose()
    }
  })
})
