// Encoding: the layout of the one flat column batch that crosses to native
// code (see crates/oxinfer-node/src/columns.rs), columns checked against the
// spec's fields and laid out in it, and the pieces that the records reader
// generated per pipeline (reader.ts) shares: the category dictionaries,
// lists, the unknown-key suggestion and the batch's final form.
import { OxinferError } from '../errors'
import type { ImageSource } from '../image'
import { describeValue, isPlainObject } from '../options'
import type { FieldSpec, PipelineColumnsInput, PreprocessStage } from './spec'

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
  /**
   * Per category field (as `cats`), the categories the spec lists for it
   * (its one_hot and ordinal stages' fitted vocabularies), for coding
   * without a dictionary lookup; empty when it lists none.
   */
  listed: readonly (readonly string[])[]
  /** Dictionary-codes the category columns of columnar input (see compileColumnCategories). */
  codeColumns: ColumnCategories
}

/** Codes each category column of `columns` into `codes` (-1: missing), appending the dictionaries to `uniques` and their lengths to `counts`. */
type ColumnCategories = (
  columns: PipelineColumnsInput,
  rows: number,
  codes: Float64Array,
  counts: Float64Array,
  uniques: string[],
  reject: (r: number, f: string, m: string) => void,
) => void

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

/**
 * Gives the batch's Float64Array of `n` numbers. Every number is written
 * before the batch is used, so a pipeline may hand back one whose run has
 * settled instead of a new one.
 */
export type Alloc = (n: number) => Float64Array
const newBatch: Alloc = (n) => new Float64Array(n)

/** No rows rejected: shared by the batches that have none (never written to). */
export const NONE_REJECTED: Map<number, OxinferError> = new Map()

/**
 * A copy of image bytes: a queued run reads them later on a worker, so the
 * caller may write to or transfer the buffer once `run` returns (a Buffer's
 * own slice would be a view; a detached array stays as it is, empty).
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteLength === 0 ? b : Uint8Array.prototype.slice.call(b)
}

/** Whether `b` was transferred away (Node 20 has no ArrayBuffer#detached): a view on it throws. */
function isDetached(b: ArrayBufferLike): boolean {
  try {
    new Uint8Array(b)
    return false
  } catch {
    return true
  }
}

/** The spec's fields grouped by how they cross in a batch (fixed by the spec, so computed once, and again after `fit`). */
export function groupFields(fields: readonly FieldSpec[], preprocess: readonly PreprocessStage[] = []): FieldGroups {
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
  const listed = cats.map((f) => {
    const seen = new Set<string>()
    for (const st of preprocess) {
      if ((st.op === 'one_hot' || st.op === 'ordinal') && st.field === f.name && Array.isArray(st.categories)) {
        for (const c of st.categories) if (typeof c === 'string') seen.add(c)
      }
    }
    return [...seen]
  })
  const L = { fields, nums, cats, arrs, arrWidth, lists, texts, images, known: new Set(fields.map((f) => f.name)), listed }
  return { ...L, codeColumns: compileColumnCategories(L) }
}

/**
 * Generated code that turns the string in `value` into its field's
 * batch-local code in `out`: a `switch` over the categories the spec lists
 * (compared by pointer when both strings are internalized) marks each in
 * the Int32Array `seen` (code + 1) the first time the batch uses it, and only
 * other strings go through a Map. Codes come in order of first appearance,
 * as with a Map alone. Category strings enter the code only as JSON string
 * literals. Needs `let s, c` and `let n, M = null; const U = [], seen =
 * new Int32Array(listed.length)` under the names given.
 */
export function categoryCode(listed: readonly string[], value: string, out: string, v: { n: string; U: string; M: string; seen: string }): string {
  const map = `if (${v.M} === null) ${v.M} = new Map(); c = ${v.M}.get(${value}); if (c === undefined) { c = ${v.n}++; ${v.M}.set(${value}, c); ${v.U}.push(${value}) } ${out} = c`
  if (listed.length === 0) return map
  const cases = listed.map((c, i) => `case ${JSON.stringify(c)}: s = ${i}; break`).join('; ')
  return `switch (${value}) { ${cases}; default: s = -1 }
      if (s >= 0) { c = ${v.seen}[s]; if (c === 0) { ${v.seen}[s] = c = ++${v.n}; ${v.U}.push(${value}) } ${out} = c - 1 } else { ${map} }`
}

/** The declarations `categoryCode` needs for category field `j`. */
export function categoryState(listed: readonly string[], j: number): string {
  return `let n${j} = 0, M${j} = null; const U${j} = []${listed.length ? `, seen${j} = new Int32Array(${listed.length})` : ''};`
}

/** The names `categoryState` declares for field `j`. */
export const categoryVars = (j: number): { n: string; U: string; M: string; seen: string } => ({ n: `n${j}`, U: `U${j}`, M: `M${j}`, seen: `seen${j}` })

/**
 * Compiles the category coding of columnar input once per spec (see
 * categoryCode): column-major, a missing column or a null/undefined value is
 * missing (-1), anything else that is not a string is rejected.
 */
function compileColumnCategories(L: Pick<FieldGroups, 'cats' | 'listed'>): ColumnCategories {
  if (L.cats.length === 0) return () => {}
  const body = L.cats
    .map((f, j) => {
      const name = JSON.stringify(f.name)
      return `{
    ${categoryState(L.listed[j], j)}
    const src = columns[${name}], at = ${j} * rows
    if (src === undefined) codes.fill(-1, at, at + rows)
    else for (let r = 0; r < rows; r++) {
      const v = src[r]
      if (typeof v === 'string') { ${categoryCode(L.listed[j], 'v', 'codes[at + r]', categoryVars(j))} }
      else {
        if (v !== null && v !== undefined) reject(r, ${name}, bad(r, ${name}, v))
        codes[at + r] = -1
      }
    }
    counts[${j}] = n${j}
    for (let i = 0; i < U${j}.length; i++) uniques.push(U${j}[i])
  }`
    })
    .join('\n')
  const make = new Function('bad', `"use strict"; return function codeColumns(columns, rows, codes, counts, uniques, reject) { let s, c\n${body}\n}`)
  return make((r: number, name: string, v: unknown) => `row ${r}: field '${name}' expects a category string, got ${describeValue(v)}`) as ColumnCategories
}

/** ", did you mean 'x'?" for a key one or two edits from a field name (a misspelling), else the field list. */
export function suggest(L: Pick<FieldGroups, 'known'>, key: string): string {
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
export function fromColumns(L: FieldGroups, columns: PipelineColumnsInput, failFast: boolean, unknown: UnknownKeys, alloc: Alloc = newBatch): ColumnBatch {
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
    // A real array or typed array: an object with a `length` (say 1e12) is not a column.
    if (!Array.isArray(c) && !(ArrayBuffer.isView(c) && !(c instanceof DataView))) {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' must be an array or typed array`, { field: f.name })
    }
    if (ArrayBuffer.isView(c) && c.byteLength === 0 && isDetached(c.buffer)) {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' is a typed array whose buffer was transferred away (detached)`, { field: f.name })
    }
    if ((c instanceof BigInt64Array || c instanceof BigUint64Array) && f.type !== 'category') {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' is a ${c.constructor.name}; ${f.type} fields take numbers (a Float64Array, Float32Array or number[])`, { field: f.name })
    }
    const n = lengthOf(f, c)
    if (!Number.isInteger(n) || (rows >= 0 && n !== rows)) {
      throw new OxinferError('ERR_INVALID_INPUT', `column '${f.name}' has ${c.length} values, which does not match the other columns (${rows} rows)`, { field: f.name })
    }
    rows = n
  }
  if (rows < 0) throw new OxinferError('ERR_INVALID_INPUT', 'no columns given')
  let rejected: Map<number, OxinferError> | null = null
  const reject = (row: number, field: string, message: string): void => {
    const e = new OxinferError('ERR_INVALID_INPUT', message, { row, field })
    if (failFast) throw e
    rejected ??= new Map()
    if (!rejected.has(row)) rejected.set(row, e)
  }
  const getCol = (r: number, name: string): unknown => (columns[name] as ArrayLike<unknown> | undefined)?.[r]
  const lists = readLists(L, rows, getCol, reject)
  const [texts, images] = readMedia(L, rows, getCol, reject)
  const { data, nums, codes, counts, arrs, lens, vals } = allocBatch(L, rows, lists.reduce((a, l) => a + l.reduce((b, x) => b + x.length, 0), 0), alloc)
  fillLists(lens, vals, lists, rows)
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
  L.codeColumns(columns, rows, codes, counts, uniques, reject)
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
  const bad = rejected ?? NONE_REJECTED
  return { flat: flatBatch(rows, bad, data, uniques, texts, images), rows, rejected: bad }
}

/** One Float64Array for the whole batch, with views for each group (see pipeline.rs). */
function allocBatch(
  L: FieldGroups,
  rows: number,
  listValues: number,
  alloc: Alloc,
): { data: Float64Array; nums: Float64Array; codes: Float64Array; counts: Float64Array; arrs: Float64Array; lens: Float64Array; vals: Float64Array } {
  const nNum = L.nums.length * rows
  const nCat = L.cats.length * rows
  const nArr = L.arrWidth * rows
  const nLen = L.lists.length * rows
  const data = alloc(nNum + nCat + L.cats.length + nArr + nLen + listValues)
  let at = 0
  const take = (n: number): Float64Array => data.subarray(at, (at += n))
  return { data, nums: take(nNum), codes: take(nCat), counts: take(L.cats.length), arrs: take(nArr), lens: take(nLen), vals: take(listValues) }
}

/** Reads list fields (arrays of numbers, or null) into the batch's tail. */
export function readLists(L: FieldGroups, rows: number, get: (r: number, name: string) => unknown, reject: (r: number, f: string, m: string) => void): number[][][] {
  return L.lists.map((f) => {
    const out: number[][] = new Array(rows)
    for (let r = 0; r < rows; r++) {
      const v = get(r, f.name)
      if (v === undefined || v === null) {
        out[r] = []
        continue
      }
      const a = listValue(v)
      if (typeof a === 'string') {
        reject(r, f.name, `row ${r}: field '${f.name}' ${a}`)
        out[r] = []
      } else out[r] = a
    }
    return out
  })
}

/**
 * A list field's value (not null or undefined) as numbers (null items:
 * NaN), or what is wrong with it, to follow "row r: field 'name' ".
 */
export function listValue(v: unknown): number[] | string {
  if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
    return `expects a list of numbers, got ${describeValue(v)}`
  }
  const a = listItems(v as ArrayLike<unknown>)
  if (a === null) return 'expects a list of numbers, got a detached typed array'
  const bad = a.findIndex((x) => typeof x !== 'number' && x !== null)
  if (bad >= 0) return `element ${bad} expects a number, got ${describeValue(a[bad])}`
  return a.map((x) => (x === null ? Number.NaN : (x as number)))
}

/**
 * A list field's items; null for a typed array whose buffer was transferred
 * (detached), which Array.from cannot read.
 */
export function listItems(v: ArrayLike<unknown>): unknown[] | null {
  try {
    return Array.from(v)
  } catch (e) {
    if (ArrayBuffer.isView(v) && e instanceof TypeError) return null
    throw e
  }
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
      if (v instanceof Uint8Array) out[r] = ownBytes(v)
      else if (isPlainObject(v) && v.data instanceof Uint8Array) out[r] = [ownBytes(v.data), v.width, v.height, v.channels]
      else {
        if (v !== undefined && v !== null) reject(r, f.name, `row ${r}: field '${f.name}' expects image bytes (Uint8Array) or { data, width, height, channels }, got ${describeValue(v)}`)
        out[r] = null
      }
    }
    return out
  })
  return [texts, images]
}

export function fillLists(lens: Float64Array, vals: Float64Array, lists: number[][][], rows: number): void {
  let at = 0
  lists.forEach((rowsOf, j) => {
    for (let r = 0; r < rows; r++) {
      lens[j * rows + r] = rowsOf[r].length
      vals.set(rowsOf[r], at)
      at += rowsOf[r].length
    }
  })
}

export function flatBatch(rows: number, rejected: Map<number, OxinferError>, data: Float64Array, uniques: string[], texts: unknown[][], images: unknown[][]): unknown[] {
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
