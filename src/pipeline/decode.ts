// Decoding: a pipeline run's packed result columns (see
// crates/oxinfer-node/src/payload.rs) read as views, and turned into the
// results callers get, as objects or as columns, with each row's error.
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
  unpack(payload, (id, type, data, dims) => m.set(PACKED_NAMES[id], { data, dims, type }))
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

/** A run's results as one object (or row error) per input row. */
export function objects(named: Columns, rows: number, rejected: Map<number, OxinferError>, output: OutputSpec): (PipelineResult | PipelineRowError)[] {
  const scores = named.get('scores')!
  const k = scores.dims[1]
  const sdata = scores.data as Float32Array
  const errors = errorsOf(named, rows, rejected)
  const li = named.get('label')?.data as Int32Array | undefined
  const sc = named.get('score')?.data as Float32Array | undefined
  const ti = named.get('top_index')
  const ts = named.get('top_score')?.data as Float32Array | undefined
  const ab = named.get('above')?.data as Uint8Array | undefined
  const bu = named.get('bucket')?.data as Int32Array | undefined
  const bucketNames = bu ? ((output.postprocess ?? []).find((p) => p.op === 'bucket') as { names: string[] }).names : undefined
  const out: (PipelineResult | PipelineRowError)[] = new Array(rows)
  for (let r = 0; r < rows; r++) {
    const e = errors[r]
    if (e) {
      out[r] = { error: e }
      continue
    }
    const res: PipelineResult = { scores: sdata.subarray(r * k, (r + 1) * k) }
    if (li) {
      res.labelIndex = li[r]
      res.label = labelOf(output.labels, li[r])
    }
    if (sc) res.score = sc[r]
    if (ti && ts) {
      const tk = ti.dims[1]
      const idx = ti.data as Int32Array
      const top: { label: string; score: number }[] = []
      for (let j = 0; j < tk; j++) top.push({ label: labelOf(output.labels, idx[r * tk + j]) ?? '', score: ts[r * tk + j] })
      res.top = top
    }
    if (ab) {
      const labs: string[] = []
      for (let j = 0; j < k; j++) if (ab[r * k + j]) labs.push(labelOf(output.labels, j) ?? '')
      res.labels = labs
    }
    if (bu && bucketNames) res.bucket = bucketNames[bu[r]]
    if (k === 1) res.value = sdata[r]
    out[r] = res
  }
  return out
}
