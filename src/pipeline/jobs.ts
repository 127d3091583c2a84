// Pipeline jobs: Pipeline.runJob over a CSV or JSONL file (driven natively)
// or over an iterable of records, arrays of records or column chunks (driven
// from JS through runBatch, or runColumns when the results go to a file).
import { resolve as resolvePath } from 'node:path'

import { fromNative, invalidArg, OxinferError } from '../errors'
import * as hub from '../hub'
import { abortedJob, driveChunks, iteratorOf, jobOptions, newBatchJob, progressOf, shiftRow, type BatchJob, type JobOptions, type JobProgress, type ResultSink } from '../job'
import { native, type NameOf, type NativeJob, type NativeJobOptions, type NativePipeline, type NativeResultFile } from '../native'
import { describeValue, intOption, isPlainObject, oneOf, showValue } from '../options'
import type { SessionInternals } from '../session/internal'
import { checkShard, type ShardOption } from '../shards'
import { columns as decodeColumns, flatColumns, objects as decodeObjects, readPacked, type Columns } from './decode'
import type { FieldSpec, OutputSpec, PipelineBatchOptions, PipelineColumns, PipelineColumnsInput, PipelineResult, PipelineRowError } from './spec'

/** Options of `Pipeline.runJob`. */
export interface PipelineJobOptions extends JobOptions {
  /** Rows per chunk read from a file or grouped from single records. Default 4096. */
  chunkSize?: number
  /** 'throw' (default): a bad row fails the job, naming its row (0-based in the whole input) and field. 'return': bad rows get an error beside the good rows. */
  errors?: 'throw' | 'return'
  /** The input file's format. Default: from its extension (.csv; .jsonl, .ndjson). */
  format?: NameOf<'FileFormat'>
  /** Write the results to this file (created or truncated) instead of yielding them: JSONL, or for file sources also CSV. */
  output?: string
  /** Default: from the output's extension (.csv, else JSONL). */
  outputFormat?: NameOf<'FileFormat'>
  /** What the iterator yields per chunk: 'objects' (default, {@link PipelineJobChunk}) or 'columns' ({@link PipelineJobColumns}, cheaper for large chunks). */
  results?: 'objects' | 'columns'
  /**
   * Score one shard of a file: the rows whose lines start in byte range
   * `index` of `count` (no pre-pass; one record per line). Needs `output`:
   * the shard writes `<output>.shard-<index>-of-<count>` and, once complete,
   * a manifest beside it; {@link mergeShards} joins the parts. Rows, and
   * `firstRow`/progress, are counted within the shard.
   */
  shard?: ShardOption
}

/** A chunk of a pipeline job's results as columns (`results: 'columns'`), in input order. */
export interface PipelineJobColumns {
  /** Index of the chunk's first row in the whole input (0-based). */
  firstRow: number
  /** As `runBatch(…, { output: 'columns' })` returns them; `errors[i]` has `row` counted in the whole input. */
  columns: PipelineColumns
}

/** A chunk of a pipeline job's results, in input order. */
export interface PipelineJobChunk {
  /** Index of the chunk's first row in the whole input (0-based). */
  firstRow: number
  /** One entry per row; a bad row's error has `row` counted in the whole input. */
  results: (PipelineResult | PipelineRowError)[]
}

/** @internal What a pipeline job needs of its pipeline (see Pipeline.runJob). */
export interface JobHost {
  readonly fields: readonly FieldSpec[]
  readonly session: SessionInternals
  /** The compiled pipeline (read when a file job starts). */
  readonly native: NativePipeline
  /** Why the spec cannot run yet (it needs `fit`), or null. */
  readonly unfitted: string | null
  /** The spec's output section (read when results are decoded). */
  readonly output: OutputSpec
  /** The pipeline's `unknownFields` policy, for file columns and JSON keys. */
  readonly unknownFields: NameOf<'UnknownFields'>
  /** Pipeline.runBatch. */
  runBatch(records: Record<string, unknown>[] | PipelineColumnsInput, options: PipelineBatchOptions): Promise<unknown>
  /** Runs a chunk as runBatch does, resolving to its raw result columns. */
  runColumns(records: Record<string, unknown>[] | PipelineColumnsInput, failFast: boolean, signal: AbortSignal): Promise<Columns>
}

/** A chunk's raw result columns, on their way to a results file. */
interface RawChunk {
  firstRow: number
  named: Columns
}

/**
 * Where an iterable job's results go with `output`: the native job writer
 * (crates/oxinfer-core/src/job/write.rs), the same as for file jobs, fed one
 * chunk's result columns at a time and writing off the JS thread. The file
 * is created at once, so that an unwritable path throws from `runJob`.
 */
function resultFile(pipeline: NativePipeline, path: string, format: NameOf<'FileFormat'>): ResultSink<RawChunk> {
  let file: NativeResultFile
  try {
    file = pipeline.openResultFile(path, format)
  } catch (e) {
    throw fromNative(e)
  }
  return {
    write: (c) => file.write(c.firstRow, flatColumns(c.named)).catch((e: unknown) => Promise.reject(fromNative(e))),
    close: () => file.finish().catch((e: unknown) => Promise.reject(fromNative(e))),
    discard: () => file.discard().catch(() => {}),
  }
}

function shiftColumnErrors(c: PipelineColumns, firstRow: number): void {
  if (firstRow === 0) return
  for (let i = 0; i < c.errors.length; i++) if (c.errors[i]) c.errors[i] = shiftRow(c.errors[i], firstRow) as OxinferError
}

/** @internal Pipeline.runJob: checks the options, then starts a file job or an iterable job. */
export function runPipelineJob(host: JobHost, source: string | AsyncIterable<unknown> | Iterable<unknown>, options: PipelineJobOptions): BatchJob<PipelineJobChunk | PipelineJobColumns> {
  const o = jobOptions('pipeline runJob', options, ['chunkSize', 'errors', 'format', 'output', 'outputFormat', 'results', 'shard'])
  const opts = options as Record<string, unknown>
  const shape = opts.results ?? 'objects'
  if (shape !== 'objects' && shape !== 'columns') throw invalidArg(`runJob: results must be 'objects' or 'columns', got ${showValue(shape)}`)
  if (shape === 'columns' && opts.output !== undefined) throw invalidArg("runJob: results: 'columns' shapes what the iterator yields; a job with output yields nothing")
  const chunkSize = intOption(opts, 'chunkSize', 4096, 1, 1 << 24)
  const errors = opts.errors ?? 'throw'
  if (errors !== 'throw' && errors !== 'return') throw invalidArg(`runJob: errors must be 'throw' or 'return', got ${showValue(errors)}`)
  const formatOf = (key: string, path: string, fallback?: NameOf<'FileFormat'>): NameOf<'FileFormat'> => {
    const f = opts[key] ?? (/\.csv$/i.test(path) ? 'csv' : /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : fallback)
    if (f === undefined) throw invalidArg(`runJob: ${key} must be given: the extension of '${path}' does not say`)
    return oneOf(`runJob: ${key}`, f, native.FileFormat)
  }
  if (opts.output !== undefined && (typeof opts.output !== 'string' || opts.output === '')) throw invalidArg('runJob: output must be a file path')
  const shard = opts.shard === undefined ? undefined : checkShard(opts.shard, 'runJob: shard')
  if (shard && typeof source !== 'string') throw invalidArg('runJob: shard applies to file sources only')
  if (host.session.disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
  if (host.unfitted) {
    try {
      host.native.checkFitted()
    } catch (e) {
      throw fromNative(e)
    }
  }
  if (o.signal?.aborted) throw abortedJob(o.signal)
  if (typeof source === 'string') {
    if (source === '') throw invalidArg('runJob: the input path is empty')
    const inputFormat = formatOf('format', source)
    const output = opts.output as string | undefined
    const outputFormat = output === undefined ? undefined : formatOf('outputFormat', output, 'jsonl')
    return fileJob(host, resolvePath(source), { inputFormat, output: output && resolvePath(output), outputFormat, chunkSize, concurrency: o.concurrency, failFast: errors === 'throw', progressIntervalMs: o.intervalMs, unknownFields: host.unknownFields, shard: shard && [shard.index, shard.count] }, o, shape === 'columns')
  }
  if (opts.format !== undefined) throw invalidArg('runJob: format applies to file sources only')
  const it = iteratorOf(source, 'runJob')
  let sink: ResultSink<RawChunk> | undefined
  if (opts.output !== undefined) {
    if (formatOf('outputFormat', opts.output as string, 'jsonl') !== 'jsonl') throw invalidArg('runJob: iterable sources write JSONL output only; CSV output is written for file sources')
    sink = resultFile(host.native, resolvePath(opts.output as string), 'jsonl')
  }
  const inner = new AbortController()
  const job = newBatchJob<PipelineJobChunk | PipelineJobColumns>(o.concurrency, () => {}, () => inner.abort())
  const isColumns = (v: Record<string, unknown>): boolean =>
    host.fields.some((f) => f.type !== 'array' && f.type !== 'list' && f.type !== 'image' && (Array.isArray(v[f.name]) || ArrayBuffer.isView(v[f.name])))
  const rowsOf = (c: Record<string, unknown>[] | PipelineColumnsInput): number => {
    if (Array.isArray(c)) return c.length
    for (const f of host.fields) {
      const col = c[f.name]
      if (col === undefined) continue
      return f.type === 'array' && !Array.isArray(col[0]) && !ArrayBuffer.isView(col[0]) ? col.length / (f.size ?? 1) : col.length
    }
    return 0
  }
  async function* chunks(): AsyncGenerator<Record<string, unknown>[] | PipelineColumnsInput> {
    let buf: Record<string, unknown>[] = []
    let i = 0
    try {
      for (;;) {
        const n = await it.next()
        if (n.done) break
        const v = n.value
        if (Array.isArray(v)) {
          if (buf.length) yield buf
          buf = []
          yield v as Record<string, unknown>[]
        } else if (isPlainObject(v) && isColumns(v)) {
          if (buf.length) yield buf
          buf = []
          yield v as PipelineColumnsInput
        } else if (isPlainObject(v)) {
          buf.push(v)
          if (buf.length >= chunkSize) {
            yield buf
            buf = []
          }
        } else throw new OxinferError('ERR_INVALID_INPUT', `runJob: source item ${i} is not a record, an array of records or a column chunk (${describeValue(v)})`)
        i++
      }
      if (buf.length) yield buf
    } finally {
      await it.return?.()
    }
  }
  const run = async (chunk: Record<string, unknown>[] | PipelineColumnsInput, firstRow: number, signal: AbortSignal): Promise<PipelineJobChunk | PipelineJobColumns | RawChunk> => {
    if (sink) {
      try {
        return { firstRow, named: await host.runColumns(chunk, errors === 'throw', signal) }
      } catch (e) {
        throw shiftRow(e, firstRow)
      }
    }
    if (shape === 'columns') {
      let columns: PipelineColumns
      try {
        columns = (await host.runBatch(chunk, { signal, errors: errors as 'throw' | 'return', output: 'columns' })) as PipelineColumns
      } catch (e) {
        throw shiftRow(e, firstRow)
      }
      shiftColumnErrors(columns, firstRow)
      return { firstRow, columns }
    }
    let results: (PipelineResult | PipelineRowError)[]
    try {
      results = (await host.runBatch(chunk, { signal, errors: errors as 'throw' | 'return' })) as (PipelineResult | PipelineRowError)[]
    } catch (e) {
      throw shiftRow(e, firstRow)
    }
    if (errors === 'return' && firstRow > 0) {
      for (const r of results) if ('error' in r) r.error = shiftRow(r.error, firstRow) as OxinferError
    }
    return { firstRow, results }
  }
  const countErrors = (c: PipelineJobChunk | PipelineJobColumns | RawChunk): number => {
    if (errors === 'throw') return 0
    let n = 0
    if ('named' in c) n = c.named.get('error_row')?.dims[0] ?? 0
    else if ('columns' in c) for (const e of c.columns.errors) n += e ? 1 : 0
    else for (const r of c.results) if ('error' in r) n++
    return n
  }
  driveChunks(job as BatchJob<PipelineJobChunk | PipelineJobColumns | RawChunk>, chunks(), run, rowsOf, countErrors, o, inner, sink as ResultSink<PipelineJobChunk | PipelineJobColumns | RawChunk> | undefined)
  return job
}

/** A job over a file, driven natively (see crates/oxinfer-core/src/job). */
function fileJob(
  host: JobHost,
  input: string,
  n: Omit<NativeJobOptions, 'input'>,
  o: { signal?: AbortSignal; onProgress?: (p: JobProgress) => void },
  asColumns: boolean,
): BatchJob<PipelineJobChunk | PipelineJobColumns> {
  const id = hub.nextId()
  let handle: NativeJob | undefined
  let abortRequested = false
  const job = newBatchJob<PipelineJobChunk | PipelineJobColumns>(
    n.concurrency,
    () => handle?.release(1),
    () => {
      abortRequested = true
      handle?.abort()
    },
    (raw) => {
      const [firstRow, named] = raw as [number, Columns]
      if (asColumns) {
        const columns = decodeColumns(named, named.get('scores')!.dims[0], new Map(), host.output)
        shiftColumnErrors(columns, firstRow)
        return { firstRow, columns }
      }
      const results = decodeObjects(named, named.get('scores')!.dims[0], new Map(), host.output)
      if (firstRow > 0 && named.has('error_row')) {
        for (const r of results) if ('error' in r) r.error = shiftRow(r.error, firstRow) as OxinferError
      }
      return { firstRow, results }
    },
  )
  const signal = o.signal
  const onAbort = (): void => {
    abortRequested = true
    handle?.abort()
  }
  const session = host.session
  const end = (): void => {
    hub.cancel(id)
    hub.track(-1)
    session.hold(-1)
    signal?.removeEventListener('abort', onAbort)
  }
  const progress = (p: unknown[], final: boolean): JobProgress =>
    progressOf(p[1] as number, p[2] as number, p[5] as number, final ? (p[1] as number) : undefined, p[3] as number, p[4] as number)
  const callProgress = (p: JobProgress): boolean => {
    if (!o.onProgress || abortRequested) return true
    try {
      o.onProgress(p)
      return true
    } catch (e) {
      onAbort()
      job.fail(e)
      return false
    }
  }
  const onEvent = (payload: unknown): void => {
    const ev = payload as unknown[]
    hub.register(id, onEvent)
    switch (ev[0]) {
      case 0: {
        const packed = ev[2]
        if (typeof packed === 'string') {
          onAbort()
          job.fail(fromNative(packed))
          return
        }
        job.push([ev[1] as number, readPacked(packed as unknown[])])
        return
      }
      case 1:
        callProgress(progress(ev, false))
        return
      case 2: {
        end()
        const p = progress(ev, true)
        if (callProgress(p)) job.finish({ rows: p.rowsDone, errors: p.errors, seconds: p.seconds, rowsPerSecond: p.rowsPerSecond })
        return
      }
      default: {
        end()
        const e = fromNative(ev[1])
        job.fail(e.code === 'ERR_ABORTED' && signal?.aborted ? abortedJob(signal) : e)
      }
    }
  }
  hub.register(id, onEvent)
  try {
    handle = host.native.startJob(session.native, id, { input, ...n })
  } catch (e) {
    hub.cancel(id)
    throw fromNative(e)
  }
  hub.track(1)
  session.hold(1)
  signal?.addEventListener('abort', onAbort, { once: true })
  return job
}
