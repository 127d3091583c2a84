// Tests of the records reader generated per pipeline (src/pipeline/reader.ts),
// the category coding of columns that goes with it (encode.ts) and the result
// objects built per output shape (decode.ts): against a copy of the generic
// transposer they replaced (the same batch, the same errors, the same counts
// of ignored keys, on seeded random records over every field type, missing
// values, unknown categories and keys), with odd field names, and end to end
// on the penguins fixture.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { OxinferError, Pipeline, type PipelineColumns, type PipelineResult, type PipelineRowError, type PipelineSpec } from '../index.js'
import { fixture, readJson, rejectsWith, require, root } from './helpers'

type Rec = Record<string, unknown>
type Field = { name: string; type: string; size?: number }
interface Unknown {
  ignore: boolean
  ignored: number
}
interface Batch {
  flat: unknown[]
  rows: number
  rejected: Map<number, OxinferError>
}
interface Groups {
  fields: Field[]
  nums: Field[]
  cats: Field[]
  arrs: Field[]
  arrWidth: number
  lists: Field[]
  texts: Field[]
  images: Field[]
  known: Set<string>
}

const encode = require(join(root, 'src/pipeline/encode.js')) as {
  groupFields(fields: Field[], preprocess?: unknown[]): Groups
  fromColumns(L: Groups, columns: Record<string, unknown>, failFast: boolean, unknown: Unknown): Batch
  suggest(L: Groups, key: string): string
}
const { compileReader } = require(join(root, 'src/pipeline/reader.js')) as {
  compileReader(L: Groups): (records: unknown[], failFast: boolean, unknown: Unknown) => Batch
}
const { describeValue, isPlainObject } = require(join(root, 'src/options.js')) as { describeValue(v: unknown): string; isPlainObject(v: unknown): boolean }

/**
 * The generic transposer the generated reader replaced (src/pipeline/encode.ts
 * before issue #12), field group by field group, kept here as the reference.
 */
function reference(L: Groups, records: unknown[], failFast: boolean, unknown: Unknown): Batch {
  const rows = records.length
  const rejected = new Map<number, OxinferError>()
  const reject = (row: number, field: string, message: string): void => {
    const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
    if (failFast) throw e
    if (!rejected.has(row)) rejected.set(row, e)
  }
  for (let r = 0; r < rows; r++) {
    const rec = records[r] as Rec
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) reject(r, '', `row ${r}: a record must be an object, got ${describeValue(rec)}`)
    else
      for (const k in rec) {
        if (L.known.has(k) || !Object.prototype.hasOwnProperty.call(rec, k)) continue
        if (unknown.ignore) unknown.ignored++
        else {
          reject(r, k, `row ${r}: unknown field '${k}'${encode.suggest(L, k)}; pass unknownFields: 'ignore' to allow keys the spec does not declare`)
          break
        }
      }
  }
  const get = (r: number, name: string): unknown => (rejected.has(r) ? undefined : (records[r] as Rec)[name])
  const missing = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isNaN(v))
  const lists = L.lists.map((f) =>
    Array.from({ length: rows }, (_, r) => {
      const v = get(r, f.name)
      if (v === undefined || v === null) return []
      if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
        reject(r, f.name, `row ${r}: field '${f.name}' expects a list of numbers, got ${describeValue(v)}`)
        return []
      }
      const a = Array.from(v as ArrayLike<unknown>)
      const bad = a.findIndex((x) => typeof x !== 'number' && x !== null)
      if (bad >= 0) {
        reject(r, f.name, `row ${r}: field '${f.name}' element ${bad} expects a number, got ${describeValue(a[bad])}`)
        return []
      }
      return a.map((x) => (x === null ? Number.NaN : (x as number)))
    }),
  )
  const texts = L.texts.map((f) =>
    Array.from({ length: rows }, (_, r) => {
      const v = get(r, f.name)
      if (typeof v === 'string') return v
      if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects a string, got ${describeValue(v)}`)
      return null
    }),
  )
  const images = L.images.map((f) =>
    Array.from({ length: rows }, (_, r) => {
      const v = get(r, f.name) as Rec | undefined
      if (v instanceof Uint8Array) return v
      if (isPlainObject(v) && v!.data instanceof Uint8Array) return [v!.data, v!.width, v!.height, v!.channels]
      if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(v)}`)
      return null
    }),
  )
  const listValues = lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0)
  const nNum = L.nums.length * rows
  const nCat = L.cats.length * rows
  const data = new Float64Array(nNum + nCat + L.cats.length + L.arrWidth * rows + L.lists.length * rows + listValues)
  const codesAt = nNum
  const countsAt = codesAt + nCat
  const arrAt = countsAt + L.cats.length
  const lensAt = arrAt + L.arrWidth * rows
  let at = lensAt + L.lists.length * rows
  lists.forEach((l, j) => l.forEach((x, r) => ((data[lensAt + j * rows + r] = x.length), data.set(x, at), (at += x.length))))
  L.nums.forEach((f, j) => {
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name)
      let x = Number.NaN
      if (missing(v)) x = Number.NaN
      else if (f.type === 'boolean') {
        if (typeof v === 'boolean') x = v ? 1 : 0
        else reject(r, f.name, `row ${r}: field '${f.name}' expects a boolean, got ${describeValue(v)}`)
      } else if (typeof v === 'number' && (f.type === 'number' || Number.isInteger(v) || !Number.isFinite(v))) x = v
      else reject(r, f.name, `row ${r}: field '${f.name}' expects ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${describeValue(v)}`)
      data[j * rows + r] = x
    }
  })
  const uniques: string[] = []
  L.cats.forEach((f, j) => {
    const dict = new Map<string, number>()
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name)
      let c = -1
      if (typeof v === 'string') {
        c = dict.get(v) ?? -1
        if (c < 0) dict.set(v, (c = dict.size)), uniques.push(v)
      } else if (!missing(v)) reject(r, f.name, `row ${r}: field '${f.name}' expects a category string, got ${describeValue(v)}`)
      data[codesAt + j * rows + r] = c
    }
    data[countsAt + j] = dict.size
  })
  let base = arrAt
  for (const f of L.arrs) {
    const size = f.size ?? 1
    data.fill(Number.NaN, base, base + rows * size)
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name) as ArrayLike<unknown>
      if (missing(v)) continue
      if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)))) reject(r, f.name, `row ${r}: field '${f.name}' expects an array of ${size} numbers, got ${describeValue(v)}`)
      else if (v.length !== size) reject(r, f.name, `row ${r}: field '${f.name}' expects ${size} elements, got ${v.length}`)
      else
        for (let k = 0; k < size; k++) {
          const x = v[k]
          if (typeof x === 'number') data[base + r * size + k] = x
          else if (!missing(x)) {
            reject(r, f.name, `row ${r}: field '${f.name}' element ${k} expects a number, got ${describeValue(x)}`)
            break
          }
        }
    }
    base += rows * size
  }
  const flat = rejected.size === 0 ? [rows, null, null, null, data, uniques, texts, images] : [rows, Int32Array.from(rejected.keys()), [...rejected.values()].map((e) => e.field ?? ''), [...rejected.values()].map((e) => e.message), data, uniques, texts, images]
  return { flat, rows, rejected }
}

/** A batch (or the error thrown) as comparable text: NaN, typed arrays, bigints and undefined spelled out. */
function outcome(fn: (unknown: Unknown) => Batch, ignore: boolean): string {
  const unknown = { ignore, ignored: 0 }
  const show = (x: unknown): string =>
    JSON.stringify(x, (_k, v) =>
      typeof v === 'number' && Number.isNaN(v) ? 'NaN' : typeof v === 'bigint' ? `${v}n` : v === undefined ? 'undefined' : ArrayBuffer.isView(v) && !(v instanceof DataView) ? [v.constructor.name, ...Array.from(v as ArrayLike<unknown>, (e) => (typeof e === 'bigint' ? `${e}n` : Number.isNaN(e) ? 'NaN' : e))] : v,
    )
  try {
    const b = fn(unknown)
    return show({ flat: b.flat, rows: b.rows, rejected: [...b.rejected].map(([r, e]) => [r, e.row, e.field, e.message, e.code]), ignored: unknown.ignored })
  } catch (e) {
    const err = e as OxinferError
    return show({ threw: err.message, row: err.row, field: err.field, code: err.code, isOxinfer: err instanceof OxinferError, ignored: unknown.ignored })
  }
}

/** Seeded xorshift32. */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

const ODD_NAMES = ['a', 'b"q', 'c\\d', '__proto__', 'é', 'x y', 'constructor', "it's", 'toString', '\u2028', '"); throw new Error("injected"); ("', '${x}', '\ud800', 'hasOwnProperty', '']
const TYPES = ['number', 'integer', 'boolean', 'category', 'array', 'list', 'text', 'image']
const CATEGORIES = ['x', 'y', 'z', '', 'Ü', '"', '__proto__', '\\']
const img = new Uint8Array([1, 2, 3])
const ODD_VALUES: unknown[] = ['str', 1.5, 2, true, {}, [1, 2], new Float64Array(2), Infinity, -Infinity, 10n, new Int32Array([1, 2, 3]), [1, null, 3], [1, 'x'], img, { data: img, width: 1, height: 1, channels: 3 }, new DataView(new ArrayBuffer(8)), new BigInt64Array(2), [1, undefined], Symbol('s'), () => 1]

function randomCase(rnd: () => number): { fields: Field[]; preprocess: unknown[]; records: unknown[] } {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]
  const names = [...ODD_NAMES].sort(() => rnd() - 0.5).slice(0, 1 + Math.floor(rnd() * 7))
  const fields: Field[] = names.map((name) => {
    const type = pick(TYPES)
    return type === 'array' ? { name, type, size: 1 + Math.floor(rnd() * 3) } : { name, type }
  })
  const preprocess = fields.filter((f) => f.type === 'category' && rnd() < 0.7).map((f) => ({ op: pick(['one_hot', 'ordinal']), field: f.name, categories: CATEGORIES.filter(() => rnd() < 0.5) }))
  const value = (f: Field): unknown => {
    const r = rnd()
    if (r < 0.1) return undefined
    if (r < 0.15) return null
    if (r < 0.2) return Number.NaN
    if (r < 0.27) return pick(ODD_VALUES)
    if (f.type === 'number') return rnd() * 10 - 5
    if (f.type === 'integer') return Math.floor(rnd() * 10)
    if (f.type === 'boolean') return rnd() < 0.5
    if (f.type === 'category') return pick([...CATEGORIES, 'w', 'unlisted'])
    if (f.type === 'array') return rnd() < 0.5 ? Array.from({ length: f.size! }, () => (rnd() < 0.1 ? null : rnd())) : Float32Array.from({ length: f.size! }, () => rnd())
    if (f.type === 'list') return Array.from({ length: Math.floor(rnd() * 4) }, () => (rnd() < 0.1 ? null : rnd()))
    if (f.type === 'text') return `hello ${Math.floor(rnd() * 5)}`
    return rnd() < 0.5 ? img : { data: img, width: 1, height: 1, channels: 3 }
  }
  const record = (): unknown => {
    if (rnd() < 0.03) return pick([null, 5, 'x', [1], undefined])
    const rec: Rec = {}
    for (const f of fields) if (rnd() < 0.9) Object.defineProperty(rec, f.name, { value: value(f), enumerable: true, writable: true, configurable: true })
    if (rnd() < 0.06) rec[pick(['aa', 'bb', 'A', 'toStrin', 'x_y'])] = 1
    if (rnd() < 0.03) return Object.create({ inherited: 1, a: 3 }, Object.getOwnPropertyDescriptors(rec))
    return rec
  }
  return { fields, preprocess, records: Array.from({ length: Math.floor(rnd() * 7) }, record) }
}

describe('the generated records reader', () => {
  it('gives the batch, the errors and the ignored-key counts of the generic transposer, on 1,500 random cases', () => {
    const rnd = random(20261204)
    for (let i = 0; i < 1500; i++) {
      const { fields, preprocess, records } = randomCase(rnd)
      const L = encode.groupFields(fields, preprocess)
      const read = compileReader(L)
      for (const failFast of [true, false]) {
        for (const ignore of [false, true]) {
          const want = outcome((u) => reference(L, records, failFast, u), ignore)
          const got = outcome((u) => read(records, failFast, u), ignore)
          if (got !== want) expect({ case: i, fields, failFast, ignore, got }).toEqual({ case: i, fields, failFast, ignore, got: want })
        }
      }
    }
  })

  it('says what each field type expects, naming the row and the field', () => {
    const L = encode.groupFields([
      { name: 'n', type: 'number' },
      { name: 'i', type: 'integer' },
      { name: 'b', type: 'boolean' },
      { name: 'c', type: 'category' },
      { name: 'a', type: 'array', size: 2 },
      { name: 'l', type: 'list' },
      { name: 't', type: 'text' },
      { name: 'p', type: 'image' },
    ])
    const read = compileReader(L)
    const err = (rec: unknown): [number | undefined, string | undefined, string] => {
      try {
        read([{}, rec], true, { ignore: false, ignored: 0 })
      } catch (e) {
        return [(e as OxinferError).row, (e as OxinferError).field, (e as OxinferError).message]
      }
      return [undefined, undefined, 'no error']
    }
    expect(err({ n: 'x' })).toEqual([1, 'n', `row 1: field 'n' expects a number, got the string "x"`])
    expect(err({ i: 1.5 })).toEqual([1, 'i', "row 1: field 'i' expects an integer, got number"])
    expect(err({ b: 1 })).toEqual([1, 'b', "row 1: field 'b' expects a boolean, got number"])
    expect(err({ c: 3 })).toEqual([1, 'c', "row 1: field 'c' expects a category string, got number"])
    expect(err({ a: 'xy' })).toEqual([1, 'a', `row 1: field 'a' expects an array of 2 numbers, got the string "xy"`])
    expect(err({ a: [1, 2, 3] })).toEqual([1, 'a', "row 1: field 'a' expects 2 elements, got 3"])
    expect(err({ a: [1, 'x'] })).toEqual([1, 'a', `row 1: field 'a' element 1 expects a number, got the string "x"`])
    expect(err({ l: 5 })).toEqual([1, 'l', "row 1: field 'l' expects a list of numbers, got number"])
    expect(err({ l: [1, true] })).toEqual([1, 'l', "row 1: field 'l' element 1 expects a number, got boolean"])
    expect(err({ t: 5 })).toEqual([1, 't', "row 1: field 't' expects a string, got number"])
    expect(err({ p: 'x' })).toEqual([1, 'p', `row 1: field 'p' expects image bytes (Uint8Array) or { data, width, height, channels }, got the string "x"`])
    expect(err(7)).toEqual([1, '', 'row 1: a record must be an object, got number'])
    expect(err({ nn: 1 })).toEqual([1, 'nn', "row 1: unknown field 'nn' (did you mean 'n'?); pass unknownFields: 'ignore' to allow keys the spec does not declare"])
    expect(err({ zzzz: 1 })[2]).toBe("row 1: unknown field 'zzzz' (the spec's fields: n, i, b, c, a, l, t, p); pass unknownFields: 'ignore' to allow keys the spec does not declare")
    // Infinities are numbers, and integers; NaN, null and undefined are missing (for lists and texts only null and undefined are).
    expect(err({ n: Infinity, i: -Infinity, b: Number.NaN, c: Number.NaN, a: Number.NaN })[2]).toBe('no error')
    expect(err({ l: Number.NaN })[2]).toBe("row 1: field 'l' expects a list of numbers, got number")
    expect(err({ t: Number.NaN })[2]).toBe("row 1: field 't' expects a string, got number")
  })

  it('refuses a list held in a detached (transferred) typed array as an input error, in records and in columns', () => {
    const L = encode.groupFields([{ name: 'l', type: 'list' }])
    const detached = (): Float32Array => {
      const a = new Float32Array(2)
      structuredClone(a.buffer, { transfer: [a.buffer] })
      return a
    }
    const message = "row 0: field 'l' expects a list of numbers, got a detached typed array"
    for (const fn of [() => compileReader(L)([{ l: detached() }], true, { ignore: false, ignored: 0 }), () => encode.fromColumns(L, { l: [detached()] }, true, { ignore: false, ignored: 0 })]) {
      let err: unknown
      try {
        fn()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(OxinferError)
      expect([(err as OxinferError).code, (err as OxinferError).row, (err as OxinferError).field, (err as OxinferError).message]).toEqual(['ERR_INVALID_INPUT', 0, 'l', message])
    }
    const b = compileReader(L)([{ l: [1, 2] }, { l: detached() }], false, { ignore: false, ignored: 0 })
    expect([...b.rejected.keys()]).toEqual([1])
    expect(Array.from(b.flat[4] as Float64Array)).toEqual([2, 0, 1, 2])
  })

  it('writes missing values for undefined, null and NaN, and for a rejected row from its bad field on', () => {
    const L = encode.groupFields([
      { name: 'n', type: 'number' },
      { name: 'c', type: 'category' },
      { name: 'a', type: 'array', size: 2 },
    ])
    const read = compileReader(L)
    const b = read([{ n: null, c: undefined, a: Number.NaN }, { n: Number.NaN, c: null, a: [null, 2] }, { n: 1, c: 5, a: [1, 2] }, { n: 2, c: 'k', a: [3, 'x'] }], false, { ignore: false, ignored: 0 })
    const data = Array.from(b.flat[4] as Float64Array)
    // nums (4), codes (4), count (1), arrays (4 × 2)
    expect(data.slice(0, 4)).toEqual([Number.NaN, Number.NaN, 1, 2])
    expect(data.slice(4, 8)).toEqual([-1, -1, -1, 0])
    expect(data[8]).toBe(1)
    expect(data.slice(9)).toEqual([Number.NaN, Number.NaN, Number.NaN, 2, Number.NaN, Number.NaN, 3, Number.NaN])
    expect(b.flat[5]).toEqual(['k'])
    expect([...b.rejected.keys()]).toEqual([2, 3])
  })

  it('under errors: throw, throws the error the field-by-field transposer met first', () => {
    const read = compileReader(encode.groupFields([{ name: 'x', type: 'number' }, { name: 'y', type: 'number' }]))
    const first = (records: unknown[]): [number | undefined, string | undefined] => {
      try {
        read(records, true, { ignore: false, ignored: 0 })
      } catch (e) {
        return [(e as OxinferError).row, (e as OxinferError).field]
      }
      return [undefined, undefined]
    }
    // Field by field: y of row 0 comes after x of row 1.
    expect(first([{ x: 1, y: 'bad' }, { x: 'bad', y: 1 }])).toEqual([1, 'x'])
    // Every record was checked before any field.
    expect(first([{ x: 'bad' }, { x: 1, nope: 1 }])).toEqual([1, 'nope'])
    expect(first([{ x: 'bad' }, { x: 1 }, 'not a record'])).toEqual([2, ''])
  })

  it('counts ignored keys per key and record, and never counts inherited ones', () => {
    const read = compileReader(encode.groupFields([{ name: 'x', type: 'number' }]))
    const unknown = { ignore: true, ignored: 0 }
    const inherited = Object.create({ extra: 1, x: 2 })
    inherited.x = 3
    const b = read([{ x: 1, a: 1, b: 2 }, { x: 2, a: 1 }, inherited], true, unknown)
    expect(unknown.ignored).toBe(3)
    expect(Array.from(b.flat[4] as Float64Array)).toEqual([1, 2, 3])
  })

  it('treats odd field names and category strings as data: quotes, backslashes, __proto__, unicode, code', () => {
    const names = ['a"b', 'c\\d', '__proto__', 'é\u2028', '"); throw new Error("injected"); ("', '${x}', 'constructor']
    const fields: Field[] = names.map((name, i) => ({ name, type: i % 2 ? 'category' : 'number' }))
    const cats = ['"', '\\', '__proto__', '\u2028', "'; throw 1; '"]
    const L = encode.groupFields(fields, fields.filter((f) => f.type === 'category').map((f) => ({ op: 'one_hot', field: f.name, categories: cats })))
    const read = compileReader(L)
    const rec = JSON.parse(JSON.stringify(Object.fromEntries(names.map((n, i) => [n, i % 2 ? cats[i % cats.length] : i])))) as Rec
    expect(Object.hasOwn(rec, '__proto__')).toBe(true)
    const b = read([rec, rec], true, { ignore: false, ignored: 0 })
    const data = Array.from(b.flat[4] as Float64Array)
    expect(data.slice(0, 8)).toEqual([0, 0, 2, 2, 4, 4, 6, 6])
    expect(data.slice(8, 14)).toEqual([0, 0, 0, 0, 0, 0])
    expect(b.flat[5]).toEqual([cats[1], cats[3], cats[0]])
    expect(outcome((u) => read([rec, { ...rec, 'a"b': 'x' }], false, u), false)).toBe(outcome((u) => reference(L, [rec, { ...rec, 'a"b': 'x' }], false, u), false))
  })
})

describe('category columns', () => {
  it('code as the Map dictionary did, listed categories or not, and refuse non-strings (NaN included)', () => {
    const rnd = random(7)
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]
    for (let i = 0; i < 300; i++) {
      const fields: Field[] = [{ name: 'c', type: 'category' }, { name: 'd"', type: 'category' }, { name: 'n', type: 'number' }]
      const listed = CATEGORIES.filter(() => rnd() < 0.5)
      const L = encode.groupFields(fields, [{ op: 'one_hot', field: 'c', categories: listed }])
      const rows = Math.floor(rnd() * 6)
      const col = (): unknown[] => Array.from({ length: rows }, () => pick([...CATEGORIES, 'other', 'more', null, undefined, Number.NaN, 3]))
      const columns: Record<string, unknown> = { c: col(), n: new Float64Array(rows) }
      if (rnd() < 0.7) columns['d"'] = col()
      for (const failFast of [true, false]) {
        const got = outcome((u) => encode.fromColumns(L, columns, failFast, u), false)
        const want = outcome((u) => referenceColumns(fields, columns, rows, failFast), false)
        expect(got).toBe(want)
      }
    }
  })
})

/** What fromColumns gave for category and number columns before the generated coder (Map dictionaries). */
function referenceColumns(fields: Field[], columns: Record<string, unknown>, rows: number, failFast: boolean): Batch {
  const rejected = new Map<number, OxinferError>()
  const reject = (row: number, field: string, message: string): void => {
    const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
    if (failFast) throw e
    if (!rejected.has(row)) rejected.set(row, e)
  }
  const cats = fields.filter((f) => f.type === 'category')
  const data = new Float64Array(rows + cats.length * rows + cats.length)
  data.set(columns.n as Float64Array, 0)
  const uniques: string[] = []
  cats.forEach((f, j) => {
    const dict = new Map<string, number>()
    for (let r = 0; r < rows; r++) {
      const v = (columns[f.name] as unknown[] | undefined)?.[r]
      let c = -1
      if (typeof v === 'string') {
        c = dict.get(v) ?? -1
        if (c < 0) dict.set(v, (c = dict.size)), uniques.push(v)
      } else if (v !== null && v !== undefined) reject(r, f.name, `row ${r}: field '${f.name}' expects a category string, got ${describeValue(v)}`)
      data[rows + j * rows + r] = c
    }
    data[rows + cats.length * rows + j] = dict.size
  })
  const flat = rejected.size === 0 ? [rows, null, null, null, data, uniques, [], []] : [rows, Int32Array.from(rejected.keys()), [...rejected.values()].map((e) => e.field ?? ''), [...rejected.values()].map((e) => e.message), data, uniques, [], []]
  return { flat, rows, rejected }
}

describe('penguins through the generated reader and result builder', () => {
  const dir = fixture('penguins')
  const { records } = readJson<{ records: Rec[] }>('penguins/records.json')
  const ref = readJson<{ predict: string[]; predict_proba: number[][]; train_indices: number[] }>('penguins/reference.json')
  const close = (a: ArrayLike<number>, b: ArrayLike<number>): void => Array.from(a).forEach((x, j) => expect(Math.abs(x - b[j])).toBeLessThan(1e-6))
  const specOf = (file: string): PipelineSpec => JSON.parse(readFileSync(join(dir, file), 'utf8'))
  let p: Pipeline
  beforeAll(async () => {
    p = await Pipeline.load(join(dir, 'pipeline.json'))
  })
  afterAll(() => p.dispose())

  it('gives the same results as objects, one record at a time and as columns, matching scikit-learn', async () => {
    const batch = (await p.runBatch(records)) as PipelineResult[]
    const cols: Record<string, unknown[]> = {}
    for (const f of Object.keys(records[0])) cols[f] = records.map((r) => r[f])
    const c = (await p.runBatch(cols, { output: 'columns' })) as PipelineColumns
    for (let i = 0; i < records.length; i++) {
      const one = await p.run(records[i])
      expect(Object.keys(one)).toEqual(['scores', 'labelIndex', 'label', 'score'])
      expect(Object.keys(batch[i])).toEqual(['scores', 'labelIndex', 'label', 'score'])
      expect(one.scores).toBeInstanceOf(Float32Array)
      close(one.scores, batch[i].scores)
      expect(Array.from(c.scores.subarray(i * 3, i * 3 + 3))).toEqual(Array.from(batch[i].scores))
      expect([one.label, one.labelIndex]).toEqual([batch[i].label, batch[i].labelIndex])
      expect([c.label![i], c.labelIndex![i], c.score![i]]).toEqual([batch[i].label, batch[i].labelIndex, batch[i].score])
      expect(batch[i].label).toBe(ref.predict[i])
      ref.predict_proba[i].forEach((q, j) => expect(Math.abs(batch[i].scores[j] - q)).toBeLessThan(1e-5))
    }
  })

  it('codes listed and unknown categories in one batch as one record at a time does', async () => {
    const odd = records.slice(0, 40).map((r, i) => ({ ...r, island: i % 3 === 0 ? `Atlantis${i % 2}` : r.island, sex: i % 5 === 0 ? null : r.sex }))
    const batch = (await p.runBatch(odd)) as PipelineResult[]
    for (let i = 0; i < odd.length; i++) close((await p.run(odd[i])).scores, batch[i].scores)
    // unknown: 'ignore' one-hot: an unknown island is all zeros, whatever its name.
    close(batch[0].scores, (await p.run({ ...odd[0], island: 'Mars' })).scores)
    const mars = (await p.runBatch([{ ...odd[0], island: 'Mars' }, odd[1], { ...odd[0], island: 'Biscoe' }])) as PipelineResult[]
    close(mars[0].scores, batch[0].scores)
    expect(Array.from(mars[2].scores)).not.toEqual(Array.from(mars[0].scores))
  })

  it("names the unknown category of a one_hot stage with unknown: 'error'", async () => {
    const spec = specOf('pipeline.json')
    for (const s of spec.preprocess!) if (s.op === 'one_hot') s.unknown = 'error'
    const strict = await Pipeline.create(spec, { baseDir: dir })
    const out = await strict.runBatch([{ ...records[0], island: 'Atlantis' }, records[1]], { errors: 'return' })
    const e = (out[0] as PipelineRowError).error
    expect([e.code, e.row, e.field]).toEqual(['ERR_INVALID_INPUT', 0, 'island'])
    expect(e.message).toContain("unknown category 'Atlantis'")
    expect((out[1] as PipelineResult).label).toBe(ref.predict[1])
    await rejectsWith(strict.run({ ...records[0], island: 'Atlantis' }), 'ERR_INVALID_INPUT')
    await strict.dispose()
  })

  it('recompiles its reader on fit: the fitted vocabularies give the fitted spec’s results', async () => {
    const q = await Pipeline.create(specOf('pipeline.unfitted.json'), { baseDir: dir })
    await q.fit(ref.train_indices.map((i) => records[i]))
    const a = (await q.runBatch(records)) as PipelineResult[]
    const b = (await p.runBatch(records)) as PipelineResult[]
    a.forEach((r, i) => r.scores.forEach((x, j) => expect(Math.abs(x - b[i].scores[j])).toBeLessThan(1e-5)))
    await q.dispose()
  })

  it('reuses batch buffers only once their runs have settled: concurrent and successive batches keep their own results', async () => {
    const parts = [0, 1, 2].map((k) => records.slice(k * 64, k * 64 + 64))
    const columnsOf = (rs: Rec[]): Record<string, unknown[]> => Object.fromEntries(Object.keys(rs[0]).map((f) => [f, rs.map((r) => r[f])]))
    const want = parts.map((part) => part.map((_, i) => ref.predict[records.indexOf(part[i])]))
    for (let round = 0; round < 4; round++) {
      const objects = await Promise.all([...parts, ...parts].map((part) => p.runBatch(part) as Promise<PipelineResult[]>))
      objects.forEach((out, k) => expect(out.map((r) => r.label)).toEqual(want[k % 3]))
      const cols = await Promise.all([...parts, ...parts].map((part) => p.runBatch(columnsOf(part), { output: 'columns' })))
      cols.forEach((c, k) => expect(c.label).toEqual(want[k % 3]))
      for (let k = 0; k < 3; k++) expect((await p.run(parts[k][round])).label).toBe(want[k][round])
    }
  })

  it("refuses or counts unknown keys, through run and runBatch, as before", async () => {
    const e = await rejectsWith(p.run({ ...records[0], islnd: 'Dream' }), 'ERR_INVALID_INPUT')
    expect([e.row, e.field, e.message]).toEqual([0, 'islnd', "row 0: unknown field 'islnd' (did you mean 'island'?); pass unknownFields: 'ignore' to allow keys the spec does not declare"])
    const lax = await Pipeline.load(join(dir, 'pipeline.json'), { unknownFields: 'ignore' })
    await lax.runBatch([{ ...records[0], id: 1, note: 'x' }, { ...records[1], id: 2 }])
    await lax.run({ ...records[2], id: 3 })
    expect(lax.ignoredFields).toBe(4)
    await lax.dispose()
  })
})
