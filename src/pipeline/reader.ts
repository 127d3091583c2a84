// The records reader of a pipeline: code generated once per spec (with
// `new Function`, as ajv and fast-json-stringify do) that reads each record's
// fields once, checks them against their types, refuses or counts keys the
// spec does not declare, and writes the flat column batch that crosses to
// native code (layout in encode.ts). It gives the same batch and the same
// errors (row, field, message) as the generic transposer it replaced, which
// went field by field: so a rejected row's later fields read as missing, and
// under `errors: 'throw'` the error thrown is the first in that order (a
// record-level error before any field error, then by field, then by row).
// Field names and category strings enter the generated code only as JSON
// string literals; messages are made outside it.
import { OxinferError } from '../errors'
import { describeValue, isPlainObject } from '../options'
import { categoryCode, categoryState, categoryVars, fillLists, flatBatch, listValue, NONE_REJECTED, ownBytes, suggest, type Alloc, type ColumnBatch, type FieldGroups, type UnknownKeys } from './encode'
import type { FieldSpec } from './spec'

/**
 * Reads an array of records into a batch, or with `records` null the one
 * record `one` (no array made for it); throws the first bad record's error
 * with `failFast`.
 */
export type RecordsReader = (records: readonly unknown[] | null, failFast: boolean, unknown: UnknownKeys, alloc?: Alloc, one?: unknown) => ColumnBatch

type Kind = 'list' | 'text' | 'image' | 'num' | 'cat' | 'arr'

/** One field's check, in check order (its index + 1 is its `ord`; 0 is the record itself). */
interface Check {
  f: FieldSpec
  kind: Kind
  /** Index within its group (lists, texts, images, nums, cats) or, for arrays, its element offset within a row of the array block. */
  j: number
  /** What a bad value's message says the field expects. */
  expects: string
}

/** A run of the reader: what its helpers need to reject a row and write its missing values. */
interface State {
  rows: number
  failFast: boolean
  /** Fixed part of the batch: numbers, codes, counts, arrays, list lengths. */
  d: Float64Array
  lists: number[][][]
  texts: unknown[][]
  images: unknown[][]
  rejected: Map<number, OxinferError> | null
  /** The ord of each rejected row's check, to list them in the transposer's order. */
  ords: Map<number, number> | null
  /** With failFast: the first error in the generic transposer's order. */
  first: { ord: number; row: number; field: string; message: string } | null
}

const EMPTY: number[] = []
const NO_COLUMNS: unknown[][] = []

/** The check order of the generic transposer: lists, texts, images, numbers, categories, arrays. */
function checksOf(L: FieldGroups): Check[] {
  const expects = (f: FieldSpec): string =>
    f.type === 'boolean' ? 'a boolean' : f.type === 'integer' ? 'an integer' : f.type === 'number' ? 'a number' : f.type === 'category' ? 'a category string' : f.type === 'text' ? 'a string' : f.type === 'list' ? 'a list of numbers' : f.type === 'array' ? `an array of ${f.size ?? 1} numbers` : 'image bytes (Uint8Array) or { data, width, height, channels }'
  const out: Check[] = []
  const add = (fs: FieldSpec[], kind: Kind): void => fs.forEach((f, j) => out.push({ f, kind, j, expects: expects(f) }))
  add(L.lists, 'list')
  add(L.texts, 'text')
  add(L.images, 'image')
  add(L.nums, 'num')
  add(L.cats, 'cat')
  let w = 0
  for (const f of L.arrs) {
    out.push({ f, kind: 'arr', j: w, expects: expects(f) })
    w += f.size ?? 1
  }
  return out
}

/** Compiles the records reader of a spec's fields (see the file's comment). */
export function compileReader(L: FieldGroups): RecordsReader {
  const checks = checksOf(L)
  const NN = L.nums.length
  const NC = L.cats.length
  const AW = L.arrWidth
  const NL = L.lists.length
  const arrAt = `${NN + NC} * rows + ${NC}`
  const code = checks.map((c, i) => fieldCode(c, i + 1, L, arrAt)).join('\n')
  const known = L.fields.map((f) => `case ${JSON.stringify(f.name)}:`).join(' ')
  const body = `"use strict"
return function readRecords(records, failFast, unknown, alloc, one) {
  const rows = records === null ? 1 : records.length
  const d = alloc === undefined ? new Float64Array(${NN + NC + AW + NL} * rows + ${NC}) : alloc(${NN + NC + AW + NL} * rows + ${NC})
  ${L.texts.map((_, j) => `const T${j} = new Array(rows);`).join(' ')}
  ${L.images.map((_, j) => `const I${j} = new Array(rows);`).join(' ')}
  ${L.lists.map((_, j) => `const LS${j} = new Array(rows);`).join(' ')}
  const st = { rows, failFast, d, lists: ${NL ? `[${L.lists.map((_, j) => `LS${j}`).join(', ')}]` : 'NONE'}, texts: ${L.texts.length ? `[${L.texts.map((_, j) => `T${j}`).join(', ')}]` : 'NONE'}, images: ${L.images.length ? `[${L.images.map((_, j) => `I${j}`).join(', ')}]` : 'NONE'}, rejected: null, ords: null, first: null }
  const ignore = unknown.ignore
  ${L.cats.map((_, j) => categoryState(L.listed[j], j)).join('\n  ')}
  let v, s, c, o, a
  row: for (let r = 0; r < rows; r++) {
    const rec = records === null ? one : records[r]
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) { H.notObject(st, r, rec); continue }
    for (const k in rec) {
      ${known ? `switch (k) { ${known} continue }` : '// no fields: every key is unknown'}
      if (!hasOwn(rec, k)) continue
      if (ignore) unknown.ignored++
      else { H.unknownKey(st, r, k); continue row }
    }
${code}
  }
  ${L.cats.map((_, j) => `d[${NN + NC} * rows + ${j}] = n${j};`).join(' ')}
  const uniques = ${NC ? 'U0' : '[]'}
  ${L.cats.slice(1).map((_, i) => `for (let i = 0; i < U${i + 1}.length; i++) uniques.push(U${i + 1}[i]);`).join('\n  ')}
  return H.finish(st, uniques)
}`
  const make = new Function('H', 'NONE', 'EMPTY', 'hasOwn', 'isPlainObject', body)
  return make(helpers(L, checks), NO_COLUMNS, EMPTY, Object.hasOwn, isPlainObject) as RecordsReader
}

/** The generated check of one field (ord `o`): reads it once, writes it, or rejects the row and moves to the next. */
function fieldCode(c: Check, o: number, L: FieldGroups, arrAt: string): string {
  const key = JSON.stringify(c.f.name)
  const NN = L.nums.length
  const reject = `{ H.bad(st, r, ${o}, v); continue }`
  switch (c.kind) {
    case 'list':
      return `    v = rec[${key}]
    if (v === undefined || v === null) LS${c.j}[r] = EMPTY
    else { a = H.list(st, r, ${o}, v); if (a === null) continue; LS${c.j}[r] = a }`
    case 'text':
      return `    v = rec[${key}]
    if (typeof v === 'string') T${c.j}[r] = v
    else if (v === undefined || v === null) T${c.j}[r] = null
    else ${reject}`
    case 'image':
      return `    v = rec[${key}]
    if (v instanceof Uint8Array) I${c.j}[r] = H.bytes(v)
    else if (isPlainObject(v) && v.data instanceof Uint8Array) I${c.j}[r] = [H.bytes(v.data), v.width, v.height, v.channels]
    else if (v === undefined || v === null) I${c.j}[r] = null
    else ${reject}`
    case 'num': {
      const at = `d[${c.j} * rows + r]`
      if (c.f.type === 'boolean') {
        return `    v = rec[${key}]
    if (typeof v === 'boolean') ${at} = v ? 1 : 0
    else if (v === undefined || v === null || v !== v) ${at} = NaN
    else ${reject}`
      }
      const check = c.f.type === 'integer' ? `{ if (Number.isInteger(v) || !Number.isFinite(v)) ${at} = v; else ${reject} }` : `${at} = v`
      return `    v = rec[${key}]
    if (typeof v === 'number') ${check}
    else if (v === undefined || v === null) ${at} = NaN
    else ${reject}`
    }
    case 'cat': {
      const at = `d[${NN + c.j} * rows + r]`
      return `    v = rec[${key}]
    if (typeof v === 'string') { ${categoryCode(L.listed[c.j], 'v', at, categoryVars(c.j))} }
    else if (v === undefined || v === null || v !== v) ${at} = -1
    else ${reject}`
    }
    case 'arr': {
      const size = c.f.size ?? 1
      return `    v = rec[${key}]
    o = ${arrAt} + ${c.j} * rows + r * ${size}
    if (v === undefined || v === null || v !== v) { for (let k = 0; k < ${size}; k++) d[o + k] = NaN }
    else if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
      if (v.length !== ${size}) { H.length(st, r, ${o}, v.length); continue }
      for (let k = 0; k < ${size}; k++) {
        const x = v[k]
        if (typeof x === 'number') d[o + k] = x
        else if (x === undefined || x === null) d[o + k] = NaN
        else { H.element(st, r, ${o}, k, x); continue row }
      }
    } else ${reject}`
    }
  }
}

/** What the generated code calls off its fast path: rejections, lists, and the batch's final form. */
function helpers(L: FieldGroups, checks: Check[]) {
  const NN = L.nums.length
  const NC = L.cats.length
  const AW = L.arrWidth
  /** Records a rejection, and writes the row's missing values from check `ord` (element `elem` of an array) on. */
  const reject = (st: State, r: number, ord: number, field: string, message: string, elem = 0): void => {
    if (st.failFast) {
      // The transposer checked every row's record before any field: such an error comes first.
      if (ord === 0) throw new OxinferError('ERR_INVALID_INPUT', message, { row: r, field })
      if (st.first === null || ord < st.first.ord) st.first = { ord, row: r, field, message }
    } else {
      st.rejected ??= new Map()
      st.ords ??= new Map()
      if (!st.rejected.has(r)) {
        st.rejected.set(r, new OxinferError('ERR_INVALID_INPUT', message, { row: r, field }))
        st.ords.set(r, ord)
      }
    }
    const rows = st.rows
    const d = st.d
    for (let i = Math.max(ord, 1); i <= checks.length; i++) {
      const c = checks[i - 1]
      if (c.kind === 'list') st.lists[c.j][r] = EMPTY
      else if (c.kind === 'text') st.texts[c.j][r] = null
      else if (c.kind === 'image') st.images[c.j][r] = null
      else if (c.kind === 'num') d[c.j * rows + r] = Number.NaN
      else if (c.kind === 'cat') d[(NN + c.j) * rows + r] = -1
      else {
        const size = c.f.size ?? 1
        const o = (NN + NC) * rows + NC + c.j * rows + r * size
        d.fill(Number.NaN, o + (i === ord ? elem : 0), o + size)
      }
    }
  }
  const nameOf = (ord: number): string => checks[ord - 1].f.name
  return {
    bytes: ownBytes,
    notObject(st: State, r: number, rec: unknown): void {
      reject(st, r, 0, '', `row ${r}: a record must be an object, got ${describeValue(rec)}`)
    },
    unknownKey(st: State, r: number, k: string): void {
      reject(st, r, 0, k, `row ${r}: unknown field '${k}'${suggest(L, k)}; pass unknownFields: 'ignore' to allow keys the spec does not declare`)
    },
    bad(st: State, r: number, ord: number, v: unknown): void {
      const name = nameOf(ord)
      reject(st, r, ord, name, `row ${r}: field '${name}' expects ${checks[ord - 1].expects}, got ${describeValue(v)}`)
    },
    length(st: State, r: number, ord: number, n: number): void {
      const name = nameOf(ord)
      reject(st, r, ord, name, `row ${r}: field '${name}' expects ${checks[ord - 1].f.size ?? 1} elements, got ${n}`)
    },
    element(st: State, r: number, ord: number, k: number, x: unknown): void {
      const name = nameOf(ord)
      reject(st, r, ord, name, `row ${r}: field '${name}' element ${k} expects a number, got ${describeValue(x)}`, k)
    },
    /** A list field's value (not null or undefined) as numbers (null: NaN), or null once the row is rejected. */
    list(st: State, r: number, ord: number, v: unknown): number[] | null {
      const a = listValue(v)
      if (typeof a !== 'string') return a
      const name = nameOf(ord)
      reject(st, r, ord, name, `row ${r}: field '${name}' ${a}`)
      return null
    },
    /** The batch: throws the first error with failFast; appends the list values. */
    finish(st: State, uniques: string[]): ColumnBatch {
      if (st.first !== null) throw new OxinferError('ERR_INVALID_INPUT', st.first.message, { row: st.first.row, field: st.first.field })
      const rows = st.rows
      let data = st.d
      if (L.lists.length > 0) {
        let total = 0
        for (const l of st.lists) for (let r = 0; r < rows; r++) total += l[r].length
        data = new Float64Array(st.d.length + total)
        data.set(st.d)
        const lensAt = (NN + NC + AW) * rows + NC
        fillLists(data.subarray(lensAt, lensAt + L.lists.length * rows), data.subarray(lensAt + L.lists.length * rows), st.lists, rows)
      }
      let rejected = st.rejected ?? NONE_REJECTED
      if (rejected.size > 1) {
        // Listed as the transposer found them: by check, then by row.
        const ords = st.ords!
        rejected = new Map([...rejected].sort((a, b) => ords.get(a[0])! - ords.get(b[0])! || a[0] - b[0]))
      }
      return { flat: flatBatch(rows, rejected, data, uniques, st.texts, st.images), rows, rejected }
    },
  }
}
