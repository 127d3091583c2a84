// The API fuzz test's cases (issue #11): the fixed seed, the targets (sessions,
// pipelines, a tokenizer, image processors) made once by `setup`, and one
// property per entry point, each a fast-check arbitrary of random and
// mutated inputs and an `exec` that makes the calls through a Checker
// (fuzz-check.mjs). Shared by __test__/fuzz.test.ts (10,000 cases) and
// benchmark/fuzz.mjs (the long run); plain ESM. Pipeline cases live in
// fuzz-pipeline-cases.mjs.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import * as fc from 'fast-check'

import { settleAll } from './fuzz-check.mjs'
import { PIPELINE_PROPERTIES, setupPipelines } from './fuzz-pipeline-cases.mjs'
import { anyValue, capped, imageBytes, materialize, memo, mostly, oddBigInt, oddNumber, oddString, onTimingArb, optionsArb, rawImage, signalArb } from './fuzz-values.mjs'

/** The fixed seed of every run (the long run takes another with --seed). */
export const SEED = 0x0f11e5ed

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures')

const TYPES = ['float32', 'float64', 'float16', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool', 'string']

/** Sessions fuzzed by Session.run: inputs as [name, type, dims], 'b' the batch dim and 'n' a free one. */
const SESSIONS = [
  { key: 'tiny', model: 'tiny_mlp.onnx', inputs: [['x', 'float32', ['b', 16]]], outputs: ['y'] },
  {
    key: 'tinyBatched',
    model: 'tiny_mlp.onnx',
    options: { batching: { maxBatchSize: 8, maxQueue: 32, priorityLevels: 3, timeoutMs: 10_000 } },
    inputs: [['x', 'float32', ['b', 16]]],
    outputs: ['y'],
  },
  { key: 'allTypes', model: 'all_types.onnx', inputs: TYPES.map((t) => [`in_${t}`, t, ['b', 'n']]), outputs: TYPES.map((t) => `out_${t}`) },
  { key: 'add', model: 'add_int64.onnx', inputs: [['a', 'int64', [3]], ['b', 'int64', [3]]], outputs: ['c'] },
  { key: 'dims', model: 'dims.onnx', inputs: [['x', 'float32', ['b', 'n', 3]]], outputs: ['y'] },
  { key: 'zipmap', model: 'zipmap.onnx', inputs: [['float_input', 'float32', ['b', 4]]], outputs: ['output_label', 'output_probability'] },
  {
    key: 'masked',
    model: 'masked_tokens.onnx',
    options: { batching: { maxBatchSize: 8, inputs: { input_ids: { padAxis: 1 }, attention_mask: { padAxis: 1 } }, outputs: { tokens: { padAxis: 1 } } } },
    inputs: [['input_ids', 'int64', ['b', 'n']], ['attention_mask', 'int64', ['b', 'n']]],
    outputs: ['tokens', 'pooled'],
  },
]

/** Image processors fuzzed by ImageProcessor.run (plus one built from mutated options per case). */
const PROCESSORS = [
  {},
  { resize: { width: 16, height: 12 } },
  { resize: { shorter: 20 }, centerCrop: { width: 16, height: 16 }, normalize: 'imagenet' },
  { color: 'gray', layout: 'hwc', output: 'uint8', filter: 'nearest' },
  { resize: { width: 8, height: 8 }, maxPixels: 1000 },
]

/** Makes every target once: what each property's exec calls. */
export async function setup(lib) {
  const ctx = { lib, sessions: {}, processors: PROCESSORS.map((o) => new lib.ImageProcessor(o)) }
  for (const s of SESSIONS) ctx.sessions[s.key] = await lib.Session.create(join(FIXTURES, s.model), s.options ?? {})
  ctx.pipelines = await setupPipelines(lib)
  ctx.tokenizer = await lib.Tokenizer.fromFile(join(FIXTURES, 'text', 'qwen3-tokenizer.json'))
  return ctx
}

export async function teardown(ctx) {
  await Promise.all([...Object.values(ctx.sessions), ...Object.values(ctx.pipelines)].map((x) => x.dispose()))
}

// ---------------------------------------------------------------- Session.run

const len = (n) => ({ minLength: n, maxLength: n })

/** Valid data of `type` with `n` elements: a typed array, or a plain array the constructor converts. */
const validData = memo((type, n) => {
  const c = len(n)
  const plain = (arb) => fc.array(arb, c)
  switch (type) {
    case 'float32':
      // Also views at an offset into a larger buffer, and shared memory.
      return fc.oneof(
        fc.float32Array(c),
        plain(fc.double()),
        fc.float32Array(len(n + 3)).map((a) => a.subarray(1, n + 1)),
        fc.float32Array(c).map((a) => {
          const shared = new Float32Array(new SharedArrayBuffer(4 * n))
          shared.set(a)
          return shared
        }),
      )
    case 'float64':
      return fc.oneof(fc.float64Array(c), plain(fc.double()))
    case 'float16':
      return fc.oneof(fc.uint16Array(c), plain(fc.integer({ min: 0, max: 0xffff })))
    case 'int8':
      return fc.int8Array(c)
    case 'uint8':
      return fc.oneof(fc.uint8Array(c), plain(fc.integer({ min: -300, max: 300 })))
    case 'int16':
      return fc.int16Array(c)
    case 'uint16':
      return fc.uint16Array(c)
    case 'int32':
      return fc.oneof(fc.int32Array(c), plain(oddNumber()))
    case 'uint32':
      return fc.uint32Array(c)
    case 'int64':
      return fc.oneof(
        fc.bigInt64Array({ ...c, min: 0n, max: 15n }),
        fc.bigInt64Array(c),
        fc.bigInt64Array({ ...len(n + 1), min: 0n, max: 15n }).map((a) => a.subarray(1)),
        plain(fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.integer())),
      )
    case 'uint64':
      return fc.oneof(fc.bigUint64Array(c), plain(fc.nat()))
    case 'bool':
      return fc.oneof(fc.uint8Array({ ...c, max: 1 }), plain(fc.boolean()), fc.uint8Array(c))
    case 'string':
      return plain(oddString())
  }
})

const TYPED_CTORS = [Float32Array, Float64Array, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array]

const oddData = memo(() =>
  fc.oneof(
    anyValue(),
    fc.array(fc.oneof(oddNumber(), oddBigInt(), oddString(), fc.boolean(), fc.constantFrom(null, undefined)), { maxLength: 20 }),
    fc.tuple(fc.constantFrom(...TYPED_CTORS), fc.integer({ min: 0, max: 64 })).map(([C, n]) => new C(n)),
    fc.sparseArray(fc.double(), { maxLength: 20 }),
  ),
)

const oddDims = memo(() =>
  fc.oneof(
    anyValue(),
    fc.array(fc.oneof(fc.nat(6), oddNumber(), fc.constantFrom(0, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, -1, 1.5, '3', 3n, null)), { maxLength: 5 }),
  ),
)

const MUTATIONS = ['drop', 'rename', 'extra', 'type', 'typeOdd', 'data', 'dataLength', 'dims', 'reshape', 'nonTensor', 'dropKey']

const mutation = memo(() =>
  fc.record({
    kind: fc.constantFrom(...MUTATIONS),
    at: fc.nat(),
    name: fc.oneof(oddString(), fc.constantFrom('x', 'a', 'in_float32', 'input_ids', 'y')),
    type: fc.constantFrom(...TYPES),
    value: fc.oneof(anyValue(), oddData(), oddDims()),
    delta: fc.integer({ min: -2, max: 3 }),
  }),
)

/** One call's feeds: valid for the session, then 0-2 mutations; or not an object of feeds at all. */
const feedsArb = memo((s) => {
  const valid = fc.record({ b: fc.integer({ min: 0, max: 3 }), n: fc.integer({ min: 0, max: 4 }) }).chain(({ b, n }) => {
    const inputs = s.inputs.map(([name, type, dims]) => [name, type, dims.map((d) => (d === 'b' ? b : d === 'n' ? n : d))])
    return fc.record({
      tensors: fc.tuple(...inputs.map(([name, type, dims]) => fc.record({ name: fc.constant(name), type: fc.constant(type), dims: fc.constant(dims), data: validData(type, dims.reduce((a, d) => a * d, 1)), wrap: fc.boolean() }))),
      mutations: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.array(mutation(), { minLength: 1, maxLength: 2 }), weight: 5 }),
      nullProto: fc.nat(7).map((x) => x === 0),
    })
  })
  return fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: anyValue().map((odd) => ({ odd })), weight: 1 })
})

/** Builds a call's feeds object (fresh per call): Tensors or plain tensor-likes, mutated. */
function buildFeeds(lib, check, desc) {
  if ('odd' in desc) return desc.odd
  const entries = desc.tensors.map((t) => [t.name, { type: t.type, data: t.data, dims: t.dims, wrap: t.wrap }])
  for (const m of desc.mutations) {
    const i = entries.length === 0 ? -1 : m.at % entries.length
    const e = i >= 0 ? entries[i][1] : undefined
    if (m.kind === 'extra' || i < 0) entries.push([m.name, { type: m.type, data: new Float32Array(1), dims: [1] }])
    else if (m.kind === 'drop') entries.splice(i, 1)
    else if (m.kind === 'rename') entries[i][0] = m.name
    else if (m.kind === 'nonTensor') entries[i][1] = { raw: m.value }
    else if ('raw' in e) continue
    else if (m.kind === 'type') e.type = m.type
    else if (m.kind === 'typeOdd') e.type = m.value
    else if (m.kind === 'data') e.data = m.value
    else if (m.kind === 'dims') e.dims = m.value
    else if (m.kind === 'reshape') e.dims = Array.isArray(e.dims) ? [...e.dims.slice(0, Math.max(0, e.dims.length + m.delta)), ...(m.delta > 0 ? new Array(m.delta).fill(1) : [])] : e.dims
    else if (m.kind === 'dataLength' && Array.isArray(e.data)) {
      const n = Math.max(0, e.data.length + m.delta)
      e.data = Array.from({ length: n }, (_, k) => e.data[k % Math.max(1, e.data.length)] ?? 0)
    } else if (m.kind === 'dataLength' && ArrayBuffer.isView(e.data) && !(e.data instanceof DataView) && e.data.byteLength > 0) {
      e.data = e.data.slice(0, Math.max(0, e.data.length + m.delta))
    } else if (m.kind === 'dropKey') delete e[['type', 'data', 'dims'][m.at % 3]]
    if (e && !('raw' in e)) e.wrap = false
  }
  const feeds = desc.nullProto ? Object.create(null) : {}
  for (const [name, e] of entries) {
    let value = 'raw' in e ? e.raw : { type: e.type, data: e.data, dims: e.dims }
    if (e.wrap) {
      const made = check.sync('new Tensor', () => new lib.Tensor(e.type, e.data, e.dims), e)
      if (made.ok) value = made.value
    } else if (!('raw' in e)) for (const k of ['type', 'data', 'dims']) if (!(k in e)) delete value[k]
    Object.defineProperty(feeds, name, { value, enumerable: true, writable: true, configurable: true })
  }
  return feeds
}

const runOptionsArb = memo((s) =>
  optionsArb({
    outputs: fc.oneof(fc.subarray(s.outputs), fc.array(fc.oneof(fc.constantFrom(...s.outputs), oddString()), { maxLength: 3 })),
    signal: signalArb(),
    timeoutMs: mostly(fc.constantFrom(0, 1, 1000, 60_000), oddNumber()),
    priority: mostly(fc.integer({ min: 1, max: s.options?.batching?.priorityLevels ?? 1 }), fc.oneof(fc.integer({ min: 0, max: 4 }), oddNumber())),
    onTiming: onTimingArb(),
  }),
)

const sessionRun = {
  name: 'Session.run',
  share: 0.33,
  arbitrary: fc.constantFrom(...SESSIONS).chain((s) =>
    fc.record({ target: fc.constant(s.key), calls: fc.array(fc.record({ feeds: feedsArb(s), options: runOptionsArb(s) }), { minLength: 1, maxLength: 3 }) }),
  ),
  async exec(ctx, c, check) {
    const session = ctx.sessions[c.target]
    await settleAll(
      c.calls.map((call) => {
        const feeds = buildFeeds(ctx.lib, check, call.feeds)
        const options = materialize(call.options)
        return check.async('Session.run', () => (options === undefined ? session.run(feeds) : session.run(feeds, options)), { target: c.target, feeds, options: call.options })
      }),
    )
  },
}

// ----------------------------------------------------------- ImageProcessor

const posInt = memo(() => fc.oneof({ arbitrary: fc.integer({ min: 1, max: 48 }), weight: 6 }, { arbitrary: fc.constantFrom(0, -1, 1.5, 65536, Number.NaN, Infinity, 2 ** 31, 8n, '8', null), weight: 1 }))

/**
 * ImageProcessor options, mutated. Sizes reach 65535 (maxPixels bounds what a
 * resize makes, so huge outputs are refused); only maxPixels itself is capped
 * at 4 million pixels here, as a caller who raises it also takes its memory.
 */
const imageOptionsArb = () =>
  optionsArb(
    {
      resize: fc.oneof(fc.record({ width: posInt(), height: posInt() }), fc.record({ shorter: posInt() }), fc.record({ width: posInt(), shorter: posInt() }), anyValue()),
      filter: fc.constantFrom('bilinear', 'nearest', 'lanczos', 'BILINEAR'),
      centerCrop: fc.oneof(fc.record({ width: posInt(), height: posInt() }), fc.record({ width: posInt() })),
      color: fc.constantFrom('rgb', 'gray', 'rgba', ''),
      normalize: fc.oneof(
        fc.constantFrom('imagenet', 'none'),
        fc.record({ mean: fc.array(oddNumber(), { minLength: 1, maxLength: 4 }), std: fc.array(oddNumber(), { minLength: 1, maxLength: 4 }) }),
        fc.record({ mean: fc.constant([0.5, 0.5, 0.5]), std: fc.constantFrom([0.5, 0.5, 0.5], [1, 0, 1], [1, 1]) }),
      ),
      scale: oddNumber(),
      layout: fc.constantFrom('chw', 'hwc', 'nchw'),
      output: fc.constantFrom('float32', 'uint8', 'float16'),
      maxPixels: fc.oneof(fc.integer({ min: 1, max: 4000 }), oddNumber()),
    },
    { absent: 1, odd: 1, object: 8 },
  )

const imageRun = {
  name: 'ImageProcessor.run',
  share: 0.15,
  arbitrary: fc.record({
    processor: fc.oneof({ arbitrary: fc.nat(PROCESSORS.length - 1), weight: 3 }, { arbitrary: imageOptionsArb().map((options) => ({ options })), weight: 2 }),
    images: fc.oneof(
      { arbitrary: fc.array(fc.oneof({ arbitrary: imageBytes(), weight: 6 }, { arbitrary: rawImage(), weight: 2 }, { arbitrary: anyValue(), weight: 1 }), { maxLength: 3 }), weight: 12 },
      { arbitrary: anyValue(), weight: 1 },
    ),
    options: optionsArb({ field: oddString() }),
  }),
  async exec(ctx, c, check) {
    let p = ctx.processors[c.processor]
    if (p === undefined) {
      // maxPixels capped, as imageOptionsArb says (its odd values include any number).
      const options = capped(c.processor.options, { maxPixels: 4_000_000 })
      const made = check.sync('new ImageProcessor', () => new ctx.lib.ImageProcessor(options), c.processor)
      if (!made.ok) return
      p = made.value
    }
    await check.async('ImageProcessor.run', () => (c.options === undefined ? p.run(c.images) : p.run(c.images, c.options)), c)
  },
}

// ---------------------------------------------------------------- Tokenizer

const { lines: LINES, pairs: PAIRS } = JSON.parse(readFileSync(join(FIXTURES, 'text', 'lines.json'), 'utf8'))

/** Texts: odd strings (now and then 1 MB), the fixture's lines, or not strings at all. */
const textArb = memo(() => fc.oneof({ arbitrary: oddString({ huge: 1 }), weight: 6 }, { arbitrary: fc.constantFrom(...LINES), weight: 3 }, { arbitrary: anyValue(), weight: 1 }))
const textsArb = memo(() => fc.oneof({ arbitrary: fc.array(textArb(), { maxLength: 4 }), weight: 10 }, { arbitrary: fc.sparseArray(oddString(), { maxLength: 4 }), weight: 1 }, { arbitrary: anyValue(), weight: 1 }))

/**
 * encodeBatch options, mutated. Padded lengths past 2^20 tokens are refused
 * (2^31 once aborted the process), so the odd values include 2^31.
 */
const encodeOptionsArb = (pairs) =>
  optionsArb({
    addSpecialTokens: fc.boolean(),
    maxLength: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constantFrom(0, -1, 1.5, 4096, 2 ** 31, Number.NaN, 64n)),
    truncation: fc.constantFrom('longest_first', 'only_first', 'only_second', 'do_not_truncate'),
    stride: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constantFrom(-1, 100, 0.5)),
    padding: fc.constantFrom(false, true, 'longest', 'max_length', 'none', 'do_not_pad'),
    padToMultipleOf: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.constantFrom(0, 4096, 2 ** 31, -8, 8.5)),
    offsets: fc.constantFrom(false, true, 'utf16', 'chars', 'bytes', 'utf8'),
    typeIds: fc.boolean(),
    ids: fc.constantFrom('int32', 'int64', 'uint32', 'bigint'),
    maxChars: fc.oneof(fc.integer({ min: 1, max: 2_000_000 }), fc.constantFrom(0, 5, 1_000_000, Infinity)),
    ...(pairs ? { pairs: fc.oneof(textsArb(), fc.constantFrom(PAIRS.slice(0, 2).map((p) => p[1] ?? String(p)))) } : {}),
  })

const tokenizer = {
  name: 'Tokenizer.encodeBatch',
  share: 0.19,
  arbitrary: fc.oneof(
    { arbitrary: fc.record({ method: fc.constant('encodeBatch'), texts: textsArb(), options: encodeOptionsArb(true) }), weight: 8 },
    { arbitrary: fc.record({ method: fc.constant('encode'), text: textArb(), pair: fc.option(textArb(), { nil: undefined, freq: 2 }), options: encodeOptionsArb(false) }), weight: 2 },
    {
      arbitrary: fc.record({
        method: fc.constant('decode'),
        ids: fc.oneof(fc.array(fc.oneof(fc.nat(200_000), oddNumber(), oddBigInt()), { maxLength: 8 }), fc.int32Array({ maxLength: 8 }), fc.bigInt64Array({ maxLength: 4 }), anyValue()),
        options: optionsArb({ skipSpecialTokens: fc.oneof(fc.boolean(), anyValue()) }),
      }),
      weight: 1,
    },
  ),
  async exec(ctx, c, check) {
    const tok = ctx.tokenizer
    if (c.method === 'decode') check.sync('Tokenizer.decode', () => (c.options === undefined ? tok.decode(c.ids) : tok.decode(c.ids, c.options)), c)
    else if (c.method === 'encode') await check.async('Tokenizer.encode', () => tok.encode(c.text, c.pair, c.options), c)
    else await check.async('Tokenizer.encodeBatch', () => (c.options === undefined ? tok.encodeBatch(c.texts) : tok.encodeBatch(c.texts, c.options)), c)
  },
}

/** Every property, in the order they run; `share` is each one's part of the cases (they sum to 1). */
export const PROPERTIES = [sessionRun, ...PIPELINE_PROPERTIES, imageRun, tokenizer]

/** How many cases each property gets out of `total`. */
export function runsOf(property, total) {
  return Math.max(1, Math.round(total * property.share))
}
