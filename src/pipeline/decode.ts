// Decoding: a pipeline run's packed result columns (see
// crates/oxinfer-node/src/payload.rs) read as views, and turned into the
// results callers get, as objects or as columns, with each row's error.
// Result objects are built by code generated once per output shape (which
// result columns a spec's post-processing makes), each object made whole by
// one literal in the property order callers see.
import { OxinferError, type ErrorCode } from '../errors'
import { native } from '../native'
import { unpack } from '../payload'
import { TYPE_CODES, type TensorType } from '../tensor'
import type { OutputSpec, PipelineColumns, PipelineResult, PipelineRowError, StageTimings } from './spec'

/** Result column names, indexed by the name ids of packed payloads (from the addon). */
export const PACKED_NAMES: readonly string[] = native.pipelineColumnNames()

/** A pipeline run's result columns by name. */
export type Columns = Map<string, { data: unknown; dims: number[]; type: TensorType }>

/** Unpacks `[micros, buffer, strings]` into views over the run's one buffer (see payload.rs). */
export function readPacked(payload: unknown): Columns {
  const m: Columns = new Map()
  // Pipeline results are tensors (a model's non-tensor output is refused where the pipeline reads it).
  unpack(payload, (id, type, data, dims) => m.set(PACKED_NAMES[id], { data, dims, type: type as TensorType }))
  return m
}

/** The columns as flat feeds (`[name, typeCode, data, dims, ...]`), to hand back to the addon. */
export function flatColumns(named: Columns): unknown[] {
  const flat: unknown[] = []
  for (const [name, c] of named) flat.push(name, TYPE_CODES[c.type], c.data, c.dims)
  return flat
}

export function timingsOf(named: Columns): StageTimings {
  const t = named.get('timings')!.data as Float64Array
  return { preprocessMicros: t[0] / 1000, assembleMicros: t[1] / 1000, inferenceMicros: t[2] / 1000, postprocessMicros: t[3] / 1000 }
}

/** Each row's error (null for good rows): rejected in JS, or reported natively. */
export function errorsOf(named: Columns, rows: number, rejected: Map<number, OxinferError>): (OxinferError | null)[] {
  const errors: (OxinferError | null)[] = new Array(rows).fill(null)
  if (!named.has('error_row')) return errors
  const er = named.get('error_row')!.data as Int32Array
  const ef = named.get('error_field')!.data as string[]
  const ec = named.get('error_code')!.data as string[]
  const em = named.get('error_message')!.data as string[]
  for (let i = 0; i < er.length; i++) {
    const r = er[i]
    errors[r] = rejected.get(r) ?? new OxinferError(ec[i] as ErrorCode, em[i], { row: r, field: ef[i] || undefined })
  }
  return errors
}

/** Class `i`'s name: its label, or its index when the spec has no labels; null below a threshold (-1). */
function labelOf(labels: string[] | undefined, i: number): string | null {
  if (i < 0) return null
  return labels ? labels[i] : String(i)
}

/** A run's results as columns (`output: 'columns'`), one entry per input row. */
export function columns(named: Columns, rows: number, rejected: Map<number, OxinferError>, output: OutputSpec): PipelineColumns {
  const scores = named.get('scores')!
  const k = scores.dims[1]
  const out: PipelineColumns = { rows, k, scores: scores.data as Float32Array, errors: errorsOf(named, rows, rejected) }
  const li = named.get('label')
  if (li) {
    const idx = li.data as Int32Array
    out.labelIndex = idx
    const lab: (string | null)[] = new Array(rows)
    for (let r = 0; r < rows; r++) lab[r] = labelOf(output.labels, idx[r])
    out.label = lab
  }
  const sc = named.get('score')
  if (sc) out.score = sc.data as Float32Array
  const ti = named.get('top_index')
  if (ti) {
    out.topIndex = ti.data as Int32Array
    out.topScore = named.get('top_score')!.data as Float32Array
    out.topK = ti.dims[1]
  }
  const ab = named.get('above')
  if (ab) out.above = ab.data as Uint8Array
  const bu = named.get('bucket')
  if (bu) {
    const names = (output.postprocess ?? []).find((p) => p.op === 'bucket') as { names: string[] }
    const b = bu.data as Int32Array
    out.bucket = Array.from(b, (i) => (i < 0 ? null : names.names[i]))
  }
  return out
}

/** Builds result objects for rows [0, rows) into `out` (generated per output shape; see `builderFor`). */
type Builder = (rows: number, out: unknown[], errors: (OxinferError | null)[] | null, S: Float32Array | Float64Array, k: number, li: Int32Array | undefined, sc: Float32Array | undefined, ti: Int32Array | undefined, tk: number, ts: Float32Array | undefined, ab: Uint8Array | undefined, bu: Int32Array | undefined, bucketNames: string[] | undefined, labels: string[] | undefined) => void

/** Per output spec, its builders by shape (a bit per result column present). */
const builders = new WeakMap<OutputSpec, Map<number, Builder>>()

/**
 * The builder of one output shape. Its code holds no value of the spec
 * (labels and bucket names come in as arguments), only which properties the
 * objects have, in the order they always had: scores, labelIndex, label,
 * score, top, labels, bucket, value.
 */
function builderFor(output: OutputSpec, shape: number): Builder {
  let byShape = builders.get(output)
  if (byShape === undefined) builders.set(output, (byShape = new Map()))
  let b = byShape.get(shape)
  if (b !== undefined) return b
  const props = ['scores: new V(buf, off + r * bytes, k)']
  if (shape & 1) props.push('labelIndex: li[r]', 'label: li[r] < 0 ? null : labels ? labels[li[r]] : String(li[r])')
  if (shape & 2) props.push('score: sc[r]')
  if (shape & 4) props.push('top: top(r, ti, tk, ts, labels)')
  if (shape & 8) props.push('labels: above(r, ab, k, labels)')
  if (shape & 16) props.push('bucket: bucketNames[bu[r]]')
  if (shape & 32) props.push('value: S[r]')
  const body = `"use strict"
return function build(rows, out, errors, S, k, li, sc, ti, tk, ts, ab, bu, bucketNames, labels) {
  const V = S.constructor, buf = S.buffer, off = S.byteOffset, bytes = S.BYTES_PER_ELEMENT * k
  for (let r = 0; r < rows; r++) {
    if (errors !== null && errors[r] !== null) { out[r] = { error: errors[r] }; continue }
    out[r] = { ${props.join(', ')} }
  }
}`
  b = new Function('top', 'above', body)(top, above) as Builder
  byShape.set(shape, b)
  return b
}

/** top_k: row r's best classes, best first. */
function top(r: number, ti: Int32Array, tk: number, ts: Float32Array, labels: string[] | undefined): { label: string; score: number }[] {
  const out: { label: string; score: number }[] = []
  for (let j = 0; j < tk; j++) out.push({ label: labelOf(labels, ti[r * tk + j]) ?? '', score: ts[r * tk + j] })
  return out
}

/** threshold: the classes row r scores at least the threshold for. */
function above(r: number, ab: Uint8Array, k: number, labels: string[] | undefined): string[] {
  const out: string[] = []
  for (let j = 0; j < k; j++) if (ab[r * k + j]) out.push(labelOf(labels, j) ?? '')
  return out
}

/** A run's results as one object (or row error) per input row. */
export function objects(named: Columns, rows: number, rejected: Map<number, OxinferError>, output: OutputSpec): (PipelineResult | PipelineRowError)[] {
  const scores = named.get('scores')!
  const k = scores.dims[1]
  const S = scores.data as Float32Array | Float64Array
  const errors = rejected.size > 0 || named.has('error_row') ? errorsOf(named, rows, rejected) : null
  const li = named.get('label')?.data as Int32Array | undefined
  const sc = named.get('score')?.data as Float32Array | undefined
  const tiCol = named.get('top_index')
  const ti = tiCol?.data as Int32Array | undefined
  const ts = named.get('top_score')?.data as Float32Array | undefined
  const ab = named.get('above')?.data as Uint8Array | undefined
  const bu = named.get('bucket')?.data as Int32Array | undefined
  const bucketNames = bu ? ((output.postprocess ?? []).find((p) => p.op === 'bucket') as { names: string[] }).names : undefined
  const shape = (li ? 1 : 0) | (sc ? 2 : 0) | (ti && ts ? 4 : 0) | (ab ? 8 : 0) | (bu && bucketNames ? 16 : 0) | (k === 1 ? 32 : 0)
  const out: (PipelineResult | PipelineRowError)[] = new Array(rows)
  builderFor(output, shape)(rows, out, errors, S, k, li, sc, ti, tiCol ? tiCol.dims[1] : 0, ts, ab, bu, bucketNames, output.labels)
  return out
}
