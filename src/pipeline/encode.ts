// Encoding: records or columns checked against the spec's fields and laid
// out as the one flat column batch that crosses to native code (see
// crates/oxinfer-node/src/pipeline.rs).
import { OxinferError } from '../errors'
import type { ImageSource } from '../image'
import { describeValue, isPlainObject } from '../options'
import type { FieldSpec, PipelineColumnsInput } from './spec'

/** The spec's fields grouped by how they cross. */
export interface FieldGroups {
  /** Every field, in spec order. */
  fields: readonly FieldSpec[]
  nums: FieldSpec[]
  cats: FieldSpec[]
  arrs: FieldSpec[]
  arrWidth: number
  lists: FieldSpec[]
  texts: FieldSpec[]
  images: FieldSpec[]
  /** Every field name, for spotting keys the spec does not declare. */
  known: ReadonlySet<string>
}

/**
 * What to do with record keys and columns the spec does not declare
 * (`unknownFields`): refuse the record, or ignore them and count them.
 */
export interface UnknownKeys {
  ignore: boolean
  /** Keys ignored so far. */
  ignored: number
}

/** A batch transposed into columns, ready to cross to native code. */
export interface ColumnBatch {
  flat: unknown[]
  rows: number
  rejected: Map<number, OxinferError>
}

/** The spec's fields grouped by how they cross in a batch (fixed by the spec, so computed once). */
export function groupFields(fields: readonly FieldSpec[]): FieldGroups {
  const nums: FieldSpec[] = []
  const cats: FieldSpec[] = []
  const arrs: FieldSpec[] = []
  const lists: FieldSpec[] = []
  const texts: FieldSpec[] = []
  const images: FieldSpec[] = []
  let arrWidth = 0
  for (const f of fields) {
    if (f.type === 'category') cats.push(f)
    else if (f.type === 'list') lists.push(f)
    else if (f.type === 'text') texts.push(f)
    else if (f.type === 'image') images.push(f)
    else if (f.type === 'array') {
      arrs.push(f)
      arrWidth += f.size ?? 1
    } else nums.push(f)
  }
  return { fields, nums, cats, arrs, arrWidth, lists, texts, images, known: new Set(fields.map((f) => f.name)) }
}

/** Transposes records into the batch format (see crates/oxinfer-node/src/columns.rs), checking each value against its field's type. */
export function fromRecords(L: FieldGroups, records: Record<string, unknown>[], failFast: boolean, unknown: UnknownKeys): ColumnBatch {
  const rows = records.length
  const rejected = new Map<number, OxinferError>()
  const reject = (row: number, field: string, message: string): void => {
    const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
    if (failFast) throw e
    if (!rejected.has(row)) rejected.set(row, e)
  }
  for (let r = 0; r < rows; r++) {
    const rec = records[r]
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) reject(r, '', `row ${r}: a record must be an object, got ${describeValue(rec)}`)
    else checkUnknownKeys(L, rec, r, unknown, reject)
  }
  const get0 = (r: number, name: string): unknown => (rejected.has(r) ? undefined : (records[r] as Record<string, unknown>)[name])
  const lists = readLists(L, rows, get0, reject)
  const [texts, images] = readMedia(L, rows, get0, reject)
  const { data, nums, codes, counts, arrs, lens, vals } = allocBatch(L, rows, lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0))
  fillLists(lens, vals, lists, rows)
  const uniques: string[] = []
  const get = (r: number, name: string): unknown => (rejected.has(r) ? undefined : (records[r] as Record<string, unknown>)[name])
  const missing = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isNaN(v))
  L.nums.forEach((f, j) => {
    const name = f.name
    const base = j * rows
    for (let r = 0; r < rows; r++) {
      const v = get(r, name)
      if (missing(v)) nums[base + r] = Number.NaN
      else if (f.type === 'boolean') {
        if (typeof v === 'boolean') nums[base + r] = v ? 1 : 0
        else {
          reject(r, name, `row ${r}: field '${name}' expects a boolean, got ${describeValue(v)}`)
          nums[base + r] = Number.NaN
        }
      } else if (typeof v === 'number' && (f.type === 'number' || Number.isInteger(v) || !Number.isFinite(v))) nums[base + r] = v
      else {
        reject(r, name, `row ${r}: field '${name}' expects ${f.type === 'integer' ? 'an integer' : 'a number'}, got ${describeValue(v)}`)
        nums[base + r] = Number.NaN
      }
    }
  })
  encodeCategories(L, rows, get, missing, codes, counts, uniques, reject)
  let base = 0
  for (const f of L.arrs) {
    const name = f.name
    const size = f.size ?? 1
    arrs.fill(Number.NaN, base, base + rows * size)
    for (let r = 0; r < rows; r++) {
      const v = get(r, name)
      if (missing(v)) continue
      if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView)))) {
        reject(r, name, `row ${r}: field '${name}' expects an array of ${size} numbers, got ${describeValue(v)}`)
        continue
      }
      const a = v as ArrayLike<unknown>
      if (a.length !== size) {
        reject(r, name, `row ${r}: field '${name}' expects ${size} elements, got ${a.length}`)
        continue
      }
      for (let k = 0; k < size; k++) {
        const x = a[k]
        if (typeof x === 'number') arrs[base + r * size + k] = x
        else if (!missing(x)) {
          reject(r, name, `row ${r}: field '${name}' element ${k} expects a number, got ${describeValue(x)}`)
          break
        }
      }
    }
    base += rows * size
  }
  return { flat: flatBatch(rows, rejected, data, uniques, texts, images), rows, rejected }
}

/** Refuses (or counts) a record's keys that are not spec fields. */
function checkUnknownKeys(L: FieldGroups, rec: object, r: number, unknown: UnknownKeys, reject: (row: number, field: string, message: string) => void): void {
  for (const k in rec) {
    if (L.known.has(k) || !Object.prototype.hasOwnProperty.call(rec, k)) continue
    if (unknown.ignore) unknown.ignored++
    else return reject(r, k, `row ${r}: unknown field '${k}'${suggest(L, k)}; pass unknownFields: 'ignore' to allow keys the spec does not declare`)
  }
}

/** ", did you mean 'x'?" for a key one or two edits from a field name (a misspelling), else the field list. */
function suggest(L: FieldGroups, key: string): string {
  let best = ''
  let bestDistance = 3
  for (const f of L.known) {
    const d = distance(key.toLowerCase(), f.toLowerCase(), bestDistance)
    if (d < bestDistance) [best, bestDistance] = [f, d]
  }
  return best ? ` (did you mean '${best}'?)` : ` (the spec's fields: ${[...L.known].join(', ')})`
}

/** Levenshtein distance, or `cap` once it is sure to reach it (error path only). */
function distance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return Math.min(prev[b.length], cap)
}

/** Checks and adopts columnar input (numeric columns are copied with one memcpy each). */
export function fromColumns(L: FieldGroups, columns: PipelineColumnsInput, failFast: boolean, unknown: UnknownKeys): ColumnBatch {
  for (const k of Object.keys(columns)) {
    if (L.known.has(k)) continue
    if (unknown.ignore) unknown.ignored++
    else throw new OxinferError('ERR_INVALID_INPUT', `unknown column '${k}'${suggest(L, k)}; pass unknownFields: 'ignore' to allow columns the spec does not declare`, { field: k })
  }
  let rows = -1
  const lengthOf = (f: FieldSpec, c: ArrayLike<unknown>): number => (f.type === 'array' && !Array.isArray(c[0]) && !ArrayBuffer.isView(c[0]) ? c.length / (f.size ?? 1) : c.length)
  for (const f of L.fields) {
    const c = columns[f.name]
    if (c === undefined) continue
    if (typeof c !== 'object' || c === null || typeof (c as ArrayLike<unknown>).length !== 'number') {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' must be an array or typed array`, { field: f.name })
    }
    const n = lengthOf(f, c)
    if (!Number.isInteger(n) || (rows >= 0 && n !== rows)) {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' has ${c.length} values, which does not match the other columns (${rows} rows)`, { field: f.name })
    }
    rows = n
  }
  if (rows < 0) throw new OxinferError('ERR_INVALID_INPUT', 'no columns given')
  const rejected = new Map<number, OxinferError>()
  const reject = (row: number, field: string, message: string): void => {
    const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
    if (failFast) throw e
    if (!rejected.has(row)) rejected.set(row, e)
  }
  const getCol = (r: number, name: string): unknown => (columns[name] as ArrayLike<unknown> | undefined)?.[r]
  const lists = readLists(L, rows, getCol, reject)
  const [texts, images] = readMedia(L, rows, getCol, reject)
  const { data, nums, codes, counts, arrs, lens, vals } = allocBatch(L, rows, lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0))
  fillLists(lens, vals, lists, rows)
  codes.fill(-1)
  const uniques: string[] = []
  L.nums.forEach((f, j) => {
    const c = columns[f.name] as ArrayLike<unknown> | undefined
    const name = f.name
    const base = j * rows
    if (!c) nums.fill(Number.NaN, base, base + rows)
    else if (c instanceof Float64Array || (ArrayBuffer.isView(c) && !(c instanceof BigInt64Array) && !(c instanceof BigUint64Array) && f.type !== 'boolean')) {
      nums.set(c as ArrayLike<number>, base)
    } else {
      for (let r = 0; r < rows; r++) {
        const v = c[r]
        if (v === null || v === undefined) nums[base + r] = Number.NaN
        else if (f.type === 'boolean' && typeof v === 'boolean') nums[base + r] = v ? 1 : 0
        else if (f.type === 'boolean' && ArrayBuffer.isView(c) && (v === 0 || v === 1)) nums[base + r] = v as number
        else if (typeof v === 'number' && f.type !== 'boolean' && (f.type === 'number' || Number.isInteger(v) || Number.isNaN(v))) nums[base + r] = v
        else {
          reject(r, name, `row ${r}: field '${name}' expects ${f.type === 'boolean' ? 'a boolean' : f.type === 'integer' ? 'an integer' : 'a number'}, got ${describeValue(v)}`)
          nums[base + r] = Number.NaN
        }
      }
    }
  })
  encodeCategories(L, rows, getCol, (v) => v === null || v === undefined, codes, counts, uniques, reject)
  let base = 0
  for (const f of L.arrs) {
    const c = columns[f.name] as ArrayLike<unknown> | undefined
    const name = f.name
    const size = f.size ?? 1
    if (!c) arrs.fill(Number.NaN, base, base + rows * size)
    else if (ArrayBuffer.isView(c) && (c as ArrayLike<number>).length === rows * size) arrs.set(c as ArrayLike<number>, base)
    else {
      arrs.fill(Number.NaN, base, base + rows * size)
      for (let r = 0; r < rows; r++) {
        const v = c[r] as ArrayLike<unknown> | null | undefined
        if (v === null || v === undefined) continue
        if (typeof v !== 'object' || v.length !== size) {
          reject(r, name, `row ${r}: field '${name}' expects ${size} elements, got ${describeValue(v)}`)
          continue
        }
        for (let k = 0; k < size; k++) {
          const x = v[k]
          if (typeof x === 'number') arrs[base + r * size + k] = x
          else if (x !== null && x !== undefined) reject(r, name, `row ${r}: field '${name}' element ${k} expects a number, got ${describeValue(x)}`)
        }
      }
    }
    base += rows * size
  }
  return { flat: flatBatch(rows, rejected, data, uniques, texts, images), rows, rejected }
}

/**
 * Dictionary-codes the category fields: `codes` indexes each field's
 * batch-local dictionary, appended to `uniques` (-1: missing), and `counts`
 * says how long each dictionary is.
 */
function encodeCategories(
  L: FieldGroups,
  rows: number,
  get: (r: number, name: string) => unknown,
  missing: (v: unknown) => boolean,
  codes: Float64Array,
  counts: Float64Array,
  uniques: string[],
  reject: (r: number, f: string, m: string) => void,
): void {
  L.cats.forEach((f, j) => {
    const name = f.name
    const base = j * rows
    const dict = new Map<string, number>()
    for (let r = 0; r < rows; r++) {
      const v = get(r, name)
      if (typeof v === 'string') {
        let c = dict.get(v)
        if (c === undefined) {
          dict.set(v, (c = dict.size))
          uniques.push(v)
        }
        codes[base + r] = c
      } else {
        if (!missing(v)) reject(r, name, `row ${r}: field '${name}' expects a category string, got ${describeValue(v)}`)
        codes[base + r] = -1
      }
    }
    counts[j] = dict.size
  })
}

/** One Float64Array for the whole batch, with views for each group (see pipeline.rs). */
function allocBatch(
  L: FieldGroups,
  rows: number,
  listValues = 0,
): { data: Float64Array; nums: Float64Array; codes: Float64Array; counts: Float64Array; arrs: Float64Array; lens: Float64Array; vals: Float64Array } {
  const nNum = L.nums.length * rows
  const nCat = L.cats.length * rows
  const nArr = L.arrWidth * rows
  const nLen = L.lists.length * rows
  const data = new Float64Array(nNum + nCat + L.cats.length + nArr + nLen + listValues)
  let at = 0
  const take = (n: number): Float64Array => data.subarray(at, (at += n))
  return { data, nums: take(nNum), codes: take(nCat), counts: take(L.cats.length), arrs: take(nArr), lens: take(nLen), vals: take(listValues) }
}

/** Reads list fields (arrays of numbers, or null) into the batch's tail. */
function readLists(L: FieldGroups, rows: number, get: (r: number, name: string) => unknown, reject: (r: number, f: string, m: string) => void): number[][][] {
  return L.lists.map((f) => {
    const out: number[][] = new Array(rows)
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name)
      if (v === undefined || v === null) {
        out[r] = []
        continue
      }
      if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
        reject(r, f.name, `row ${r}: field '${f.name}' expects a list of numbers, got ${describeValue(v)}`)
        out[r] = []
        continue
      }
      const a = Array.from(v as ArrayLike<unknown>)
      const bad = a.findIndex((x) => typeof x !== 'number' && x !== null)
      if (bad >= 0) {
        reject(r, f.name, `row ${r}: field '${f.name}' element ${bad} expects a number, got ${describeValue(a[bad])}`)
        out[r] = []
        continue
      }
      out[r] = a.map((x) => (x === null ? Number.NaN : (x as number)))
    }
    return out
  })
}

/** Text and image fields: validated per row, passed through as they are. */
function readMedia(L: FieldGroups, rows: number, get: (r: number, name: string) => unknown, reject: (r: number, f: string, m: string) => void): [unknown[][], unknown[][]] {
  const texts = L.texts.map((f) => {
    const out: (string | null)[] = new Array(rows)
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name)
      if (typeof v === 'string') out[r] = v
      else {
        if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects a string, got ${describeValue(v)}`)
        out[r] = null
      }
    }
    return out
  })
  const images = L.images.map((f) => {
    const out: unknown[] = new Array(rows)
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name) as ImageSource | null | undefined
      if (v instanceof Uint8Array) out[r] = v
      else if (isPlainObject(v) && v.data instanceof Uint8Array) out[r] = [v.data, v.width, v.height, v.channels]
      else {
        if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(v)}`)
        out[r] = null
      }
    }
    return out
  })
  return [texts, images]
}

function fillLists(lens: Float64Array, vals: Float64Array, lists: number[][][], rows: number): void {
  let at = 0
  lists.forEach((rowsOf, j) => {
    for (let r = 0; r < rows; r++) {
      lens[j * rows + r] = rowsOf[r].length
      vals.set(rowsOf[r], at)
      at += rowsOf[r].length
    }
  })
}

function flatBatch(rows: number, rejected: Map<number, OxinferError>, data: Float64Array, uniques: string[], texts: unknown[][], images: unknown[][]): unknown[] {
  if (rejected.size === 0) return [rows, null, null, null, data, uniques, texts, images]
  const bad = new Int32Array(rejected.size)
  const fields: string[] = []
  const messages: string[] = []
  let i = 0
  for (const [r, e] of rejected) {
    bad[i++] = r
    fields.push(e.field ?? '')
    messages.push(e.message)
  }
  return [rows, bad, fields, messages, data, uniques, texts, images]
}
