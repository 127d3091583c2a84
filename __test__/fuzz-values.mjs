// Odd values for the API fuzz test (issue #11): fast-check arbitraries for
// what careless or hostile callers pass (lone surrogates, NaN, BigInt, 1 MB
// strings, deep and cyclic objects, detached buffers, exotic objects), and
// `show`, a short description of any value that never throws, for
// counterexample reports. Used by __test__/fuzz-cases.mjs; plain ESM, so
// vitest and plain Node (benchmark/fuzz.mjs) load it alike.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import * as fc from 'fast-check'

/**
 * Caches an arbitrary factory by its arguments: building an arbitrary (above
 * all fc.anything) costs far more than drawing from it, and the case
 * arbitraries call these inside `chain`, once per case.
 */
export function memo(factory) {
  const cache = new Map()
  return (...args) => {
    const key = JSON.stringify(args, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))
    let a = cache.get(key)
    if (a === undefined) cache.set(key, (a = factory(...args)))
    return a
  }
}

/** Strings that trip up encoders, parsers and dictionaries. */
export const ODD_STRINGS = [
  '',
  ' ',
  '\uD800',
  '\uDFFF',
  'a\uD800b',
  '\uDC00\uD800',
  '\u0000',
  'a\u0000b',
  '\uFFFE\uFFFF',
  '\u{10FFFF}',
  '\u202Eevil',
  'e\u0301',
  '👩‍👩‍👧‍👦',
  '\r\n\t\v\f',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'NaN',
  '1e309',
  '-0',
  '[object Object]',
  '\\u0000"\'<>&',
  'x'.repeat(300),
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 テキスト 文本 نص',
]

const WORDS = 'héllo wörld 🎉 '
/**
 * 1 MB strings, built once: `over` is past the 1,000,000-character default
 * of `maxChars` (refused before any work), `at` is exactly at it (tokenized
 * in full: about 1 s), and `lone` is at it and ends in a lone surrogate.
 */
export const HUGE = {
  over: 'a'.repeat(1 << 20),
  at: WORDS.repeat(Math.ceil(1_000_000 / WORDS.length)).slice(0, 1_000_000),
  lone: WORDS.repeat(Math.ceil(1_000_000 / WORDS.length)).slice(0, 999_999) + '\uD800',
}

/** A chain of nested objects too deep for JSON.stringify's recursion. */
function deep(depth, array) {
  let v = array ? [1] : { leaf: 1 }
  for (let i = 0; i < depth; i++) v = array ? [v] : { next: v }
  return v
}
export const DEEP = { object: deep(200_000, false), array: deep(200_000, true), shallow: deep(50, false) }

function cyclic() {
  const o = { name: 'cycle', value: 1 }
  o.self = o
  const a = [1, 2]
  a.push(a)
  return { object: o, array: a }
}
export const CYCLIC = cyclic()

class Opaque {
  constructor() {
    this.type = 'float32'
  }
}

/** A typed array whose buffer has been transferred away (length 0, detached). */
function detached(Ctor, n) {
  const a = new Ctor(n)
  structuredClone(a.buffer, { transfer: [a.buffer] })
  return a
}

/** Strings of arbitrary UTF-16 code units, lone surrogates included. */
export const utf16 = memo((maxLength = 24) =>
  fc.string({
    unit: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), weight: 1 }, { arbitrary: fc.constantFrom('a', ' ', 'é', '\uD83C', '\uDF89', '🎉', '0'), weight: 2 }),
    maxLength,
  }))

/** A string: plain, odd, arbitrary code units, or (`huge` in 1000) 1 MB. */
export const oddString = memo(({ huge = 0 } = {}) =>
  fc.oneof(
    { arbitrary: fc.string({ maxLength: 12 }), weight: 400 },
    { arbitrary: fc.constantFrom(...ODD_STRINGS), weight: 300 },
    { arbitrary: utf16(), weight: 300 },
    ...(huge > 0 ? [{ arbitrary: fc.constantFrom('over', 'at', 'lone').map((k) => HUGE[k]), weight: huge }] : []),
  ))

export const oddNumber = memo(() =>
  fc.oneof(
    fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 0, 1, -1, 0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 31), Number.MAX_VALUE, Number.MIN_VALUE, 1e308, -1e-308),
    fc.double(),
    fc.integer({ min: -5, max: 70 }),
    fc.integer(),
  ))

export const oddBigInt = memo(() => fc.oneof(fc.constantFrom(0n, 1n, -1n, 3n, 16n, 2n ** 63n, 2n ** 64n, -(2n ** 63n) - 1n), fc.bigInt()))

/** Objects that are not what anything expects: exotic, cyclic, deep, containers. */
export const oddObject = memo(() =>
  fc.oneof(
    fc.constantFrom(
      () => Object.create(null),
      () => new Opaque(),
      () => new Map([['x', 1]]),
      () => new Set([1]),
      () => new Date(Number.NaN),
      () => /x/g,
      () => function named() {},
      () => Symbol('odd'),
      () => new Error('not a tensor'),
      () => Promise.resolve(1),
      () => new ArrayBuffer(8),
      () => new DataView(new ArrayBuffer(8)),
      () => new SharedArrayBuffer(8),
      () => detached(Float32Array, 16),
      () => detached(Uint8Array, 16),
      () => new Float64Array(new ArrayBuffer(64), 8, 3),
      () => Buffer.from('buffer'),
      () => new Uint8ClampedArray([1, 2, 300]),
      () => new Int32Array([-1, 0, 1]),
      () => new BigInt64Array([1n, -1n]),
      () => Object.assign([1, 2, 3], { extra: true }),
      () => new Array(5),
      () => ({ length: 3 }),
      () => ({ length: 1e12 }),
      () => ({ length: -1 }),
      () => ({ length: Number.NaN }),
      () => ({ toJSON: () => 1n }),
      () => ({ valueOf: () => 7, toString: () => '7' }),
      () => Object.freeze({ a: 1 }),
      () => new Number(3),
      () => new String('boxed'),
      () => new Boolean(false),
    ).map((make) => make()),
    fc.constantFrom(CYCLIC.object, CYCLIC.array, DEEP.object, DEEP.array, DEEP.shallow),
  ))

/** Anything at all: primitives, odd strings and numbers, typed arrays, exotic objects. */
export const anyValue = memo(({ huge = 0 } = {}) =>
  fc.oneof(
    { arbitrary: oddNumber(), weight: 4 },
    { arbitrary: oddString({ huge }), weight: 4 },
    { arbitrary: oddBigInt(), weight: 2 },
    { arbitrary: fc.constantFrom(true, false, null, undefined), weight: 2 },
    { arbitrary: oddObject(), weight: 3 },
    {
      arbitrary: fc.anything({
        maxDepth: 2,
        maxKeys: 4,
        withBigInt: true,
        withTypedArray: true,
        withNullPrototype: true,
        withSparseArray: true,
        withBoxedValues: true,
        withMap: true,
        withSet: true,
        withDate: true,
      }),
      weight: 3,
    },
  ))

/** A short description of any value (strings cut, cycles and depth bounded); never throws. */
export function show(v, depth = 0, seen = new Set()) {
  try {
    if (typeof v === 'string') return v.length > 60 ? `${JSON.stringify(v.slice(0, 40))}…(${v.length} chars)` : JSON.stringify(v)
    if (typeof v === 'bigint') return `${v}n`
    if (typeof v === 'symbol' || typeof v === 'function') return String(v).slice(0, 40)
    if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v)
    if (v === null || typeof v !== 'object') return String(v)
    if (seen.has(v)) return '[cycle]'
    if (depth > 3) return '[…]'
    seen.add(v)
    const name = v.constructor?.name ?? 'null-prototype'
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      const items = Array.from(v.subarray(0, 8), (x) => show(x))
      return `${name}(${v.length})[${items.join(', ')}${v.length > 8 ? ', …' : ''}]`
    }
    if (Array.isArray(v)) {
      const items = v.slice(0, 8).map((x) => show(x, depth + 1, seen))
      return `[${items.join(', ')}${v.length > 8 ? `, …(${v.length})` : ''}]`
    }
    if (name !== 'Object' && name !== 'null-prototype') return `${name}{…}`
    const keys = Object.keys(v)
    const items = keys.slice(0, 10).map((k) => `${JSON.stringify(k.length > 30 ? k.slice(0, 30) + '…' : k)}: ${show(v[k], depth + 1, seen)}`)
    return `{${items.join(', ')}${keys.length > 10 ? ', …' : ''}}`
  } catch {
    return '[unprintable]'
  }
}

/** Mostly `good`, now and then `odd`. */
export const mostly = (good, odd, goodWeight = 4) => fc.oneof({ arbitrary: good, weight: goodWeight }, { arbitrary: odd, weight: 1 })

/** `arb` one time in `1 + nils`, null otherwise. */
export const rarely = (arb, nils = 9) => fc.oneof({ arbitrary: fc.constant(null), weight: nils }, { arbitrary: arb, weight: 1 })

/** An option left out of an options object. */
export const ABSENT = Symbol('absent')

/** A stand-in for an AbortSignal, made real per call by `materialize`: aborted already (ticks < 0) or after `ticks` turns. */
export class Abort {
  constructor(ticks) {
    this.ticks = ticks
  }
}

export const signalArb = memo(() =>
  fc.oneof(
    { arbitrary: fc.integer({ min: -1, max: 3 }).map((t) => new Abort(t)), weight: 3 },
    { arbitrary: fc.constantFrom(() => ({ aborted: true }), () => new EventTarget(), () => 'signal', () => null).map((m) => m()), weight: 1 },
  ))

export const onTimingArb = memo(() => fc.oneof({ arbitrary: fc.constantFrom(() => {}, () => { throw new Error('observer throws') }), weight: 4 }, { arbitrary: fc.constantFrom('not a function', null, 1), weight: 1 }))

/**
 * An options argument: usually absent or an object with some of `schema`'s
 * keys (each arbitrary gives good or odd values; anyValue is mixed in) and
 * now and then an unknown key; sometimes not an object at all.
 */
export const optionsArb = (schema, { absent = 5, odd = 1, object = 8 } = {}) =>
  fc.oneof(
    { arbitrary: fc.constant(undefined), weight: absent },
    { arbitrary: anyValue(), weight: odd },
    {
      arbitrary: fc
        .tuple(
          fc.tuple(...Object.values(schema).map((good) => fc.oneof({ arbitrary: fc.constant(ABSENT), weight: 12 }, { arbitrary: good, weight: 6 }, { arbitrary: anyValue(), weight: 1 }))),
          rarely(fc.tuple(fc.oneof(oddString(), fc.constantFrom('output', 'timeout', 'Signal', 'batch_size')), anyValue()), 14),
        )
        .map(([values, extra]) => {
          const o = {}
          Object.keys(schema).forEach((k, i) => {
            if (values[i] !== ABSENT) o[k] = values[i]
          })
          if (extra) Object.defineProperty(o, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true })
          return o
        }),
      weight: object,
    },
  )

/**
 * `options` with the numbers under `limits`' keys capped, for options whose
 * large valid values crash or exhaust the machine (each use is a TODO(fuzz)
 * note): the odd values an options object draws (anyValue) include any number.
 */
export function capped(options, limits) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return options
  let out = options
  for (const [k, max] of Object.entries(limits)) {
    if (typeof options[k] === 'number' && options[k] > max) {
      if (out === options) out = { ...options }
      out[k] = max
    }
  }
  return out
}

/** An options object with its Abort stand-in made a real signal for one call. */
export function materialize(options) {
  if (options === null || typeof options !== 'object') return options
  if (!(options.signal instanceof Abort)) return options
  const c = new AbortController()
  const { ticks } = options.signal
  if (ticks < 0) c.abort(new Error('aborted before the call'))
  else {
    let left = ticks
    const tick = () => (left-- <= 0 ? c.abort(new Error('aborted during the call')) : setImmediate(tick))
    setImmediate(tick)
  }
  return { ...options, signal: c.signal }
}

const IMAGES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'images')
/** The image fixtures' bytes: small PNGs and JPEGs, and two ~150 KB photos (slower to decode, so rarer). */
export const IMAGE_BYTES = Object.fromEntries(
  ['gray16_31x19.png', 'gray_40x30.png', 'palette_29x17.png', 'progressive_48x32.jpg', 'rgba_37x23.png', 'china.jpg', 'flower.jpg'].map((f) => [f, new Uint8Array(readFileSync(join(IMAGES, f)))]),
)
const SMALL_IMAGES = Object.keys(IMAGE_BYTES).filter((f) => !['china.jpg', 'flower.jpg'].includes(f))

/** Encoded image bytes: whole, truncated, bit-flipped, overwritten, or random after a PNG or JPEG signature. */
export const imageBytes = memo(({ photos = 1 } = {}) => {
  const name = fc.oneof({ arbitrary: fc.constantFrom(...SMALL_IMAGES), weight: 10 }, { arbitrary: fc.constantFrom('china.jpg', 'flower.jpg'), weight: photos })
  const bytes = name.map((n) => IMAGE_BYTES[n])
  return fc.oneof(
    { arbitrary: bytes, weight: 3 },
    { arbitrary: fc.tuple(bytes, fc.double({ min: 0, max: 1, noNaN: true })).map(([b, f]) => b.slice(0, Math.floor(b.length * f))), weight: 2 },
    {
      arbitrary: fc.tuple(bytes, fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 })).map(([b, flips]) => {
        const out = b.slice()
        for (const [at, bit] of flips) out[Math.min(out.length - 1, Math.floor(at * out.length))] ^= 1 << bit
        return out
      }),
      weight: 4,
    },
    {
      arbitrary: fc.tuple(bytes, fc.double({ min: 0, max: 1, noNaN: true }), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([b, at, junk]) => {
        const out = b.slice()
        out.set(junk.subarray(0, Math.max(0, out.length - Math.floor(at * out.length))), Math.floor(at * out.length))
        return out
      }),
      weight: 2,
    },
    {
      arbitrary: fc.tuple(fc.constantFrom([], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], [0xff, 0xd8, 0xff, 0xe0], [0x42, 0x4d], [0x47, 0x49, 0x46, 0x38]), fc.uint8Array({ maxLength: 256 })).map(([head, tail]) => Uint8Array.from([...head, ...tail])),
      weight: 2,
    },
  )
})

/** Raw pixels as ImageSource objects, mostly consistent, sometimes not. */
export const rawImage = memo(() =>
  fc
    .record({
      width: fc.oneof(fc.integer({ min: 0, max: 40 }), oddNumber(), anyValue()),
      height: fc.oneof(fc.integer({ min: 0, max: 40 }), oddNumber()),
      channels: fc.oneof(fc.constantFrom(1, 3, 4), fc.constantFrom(0, 2, 5, -1, 1.5, Number.NaN, 3n, '3')),
      fit: fc.boolean(),
      extra: fc.integer({ min: -3, max: 3 }),
    })
    .map(({ width, height, channels, fit, extra }) => {
      const n = typeof width === 'number' && typeof height === 'number' && typeof channels === 'number' ? width * height * channels : 12
      const len = Number.isFinite(n) && n >= 0 && n <= 1 << 16 ? Math.max(0, (fit ? n : n + extra) | 0) : 12
      return { data: new Uint8Array(len).fill(128), width, height, channels }
    }))
