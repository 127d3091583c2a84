// The Pipeline class: a spec compiled against its session, run per record
// or per batch (merged with other runs by the session's native scheduler
// when batching is on), over whole sources (jobs), fitted, and saved.
import { dirname, resolve as resolvePath } from 'node:path'

import { disposeSymbol } from '../dispose'
import { fromNative, invalidArg, OxinferError } from '../errors'
import type { BatchJob } from '../job'
import { native, type NameOf, type NativePipeline } from '../native'
import { checkKeys, isPlainObject, oneOf, showValue } from '../options'
import type { RunTiming } from '../payload'
import type { Estimate } from '../session/execute'
import { internalsOf, type SessionInternals } from '../session/internal'
import { checkRequestOptions, type SessionOptions, type SessionStats } from '../session/options'
import { Outbox } from '../session/outbox'
import { Session } from '../session/session'
import * as hub from '../hub'
import { type BusinessMetric, DriftListeners, type DriftListener, type DriftReport, type Profile, type Quality } from '../monitor'
import { columns, objects, readPacked, timingsOf, type Columns } from './decode'
import { fromColumns, groupFields, NONE_REJECTED, type ColumnBatch, type FieldGroups, type UnknownKeys } from './encode'
import { compileReader, type RecordsReader } from './reader'
import { runPipelineJob, type PipelineJobChunk, type PipelineJobColumns, type PipelineJobOptions } from './jobs'
import type { FieldSpec, PipelineBatchOptions, PipelineColumns, PipelineColumnsInput, PipelineOptions, PipelineResult, PipelineRowError, PipelineRunOptions, PipelineSpec, StageTimings } from './spec'

/** How many settled batch buffers a pipeline keeps for reuse, and up to what length (numbers). */
const SPARE_BUFFERS = 4
const SPARE_MAX = 1 << 17
const PIPELINE_OPTION_KEYS = ['baseDir', 'session', 'batching', 'unknownFields'] as const
const PIPELINE_BATCHING_KEYS = ['maxBatchSize', 'maxDelayMicros', 'preferredBatchSizes', 'maxQueue', 'timeoutMs', 'priorityLevels'] as const

/** @internal The native parts of each pipeline, for graphs that run it as a node. */
const natives = new WeakMap<object, { pipeline: NativePipeline; session: Session }>()

/** @internal The native pipeline and the session it runs on. */
export function pipelineNatives(p: object): { pipeline: NativePipeline; session: Session } {
  const n = natives.get(p)
  if (n === undefined) throw new TypeError('not an oxinfer Pipeline')
  return n
}

/**
 * A tabular inference pipeline: pre-processing, feature assembly, the model and
 * post-processing, all run natively with one crossing per request or batch.
 */
export class Pipeline {
  #spec: PipelineSpec
  #session: Session
  /** Runs wait on the network (a lookup stage): never inline. */
  #io = false
  #internals: SessionInternals
  #native: NativePipeline
  #baseDir: string
  /** Running estimates of engine time, per size class (see #execute). */
  #estimates: Estimate[] = []
  #fields: FieldSpec[]
  #groups: FieldGroups
  /** The records reader generated for the spec's fields (see reader.ts). */
  #read: RecordsReader
  #unfitted: string | null
  /** This turn's queued runs, submitted in one native call. */
  #outbox: Outbox
  /** The `unknownFields` policy, and the count of keys it ignored. */
  #unknown: UnknownKeys
  /** Batch buffers of runs that have settled, to fill again (see #alloc). */
  #spare: Float64Array[] = []
  #drift = new DriftListeners()

  private constructor(spec: PipelineSpec, session: Session, n: NativePipeline, baseDir: string, unknownFields: NameOf<'UnknownFields'>) {
    this.#unknown = { ignore: unknownFields === 'ignore', ignored: 0 }
    this.#spec = spec
    this.#session = session
    this.#internals = internalsOf(session)
    this.#native = n
    this.#io = n.waitsOnIo
    this.#unfitted = n.unfitted
    this.#baseDir = baseDir
    this.#fields = spec.fields
    this.#groups = groupFields(spec.fields, spec.preprocess)
    this.#read = compileReader(this.#groups)
    const internals = this.#internals
    this.#outbox = new Outbox(6, (list) => this.#native.submitMany(internals.native, list))
    natives.set(this, { pipeline: n, session })
  }

  /**
   * Creates a pipeline from a spec object (or its JSON text). Rejects with
   * ERR_INVALID_SPEC naming the stage and the JSON path (`jsonPath`) of the
   * offending value, or ERR_FILE when the model or a tokenizer is missing.
   */
  static async create(spec: PipelineSpec | string, options: PipelineOptions = {}): Promise<Pipeline> {
    if (typeof spec === 'string') return Pipeline.#create(spec, options, null)
    if (!isPlainObject(spec)) throw invalidArg('Pipeline.create: spec must be an object or JSON text')
    let text: string
    try {
      text = JSON.stringify(spec)
    } catch (e) {
      // A value JSON cannot hold (a BigInt, a cycle) is a spec error like any other.
      throw new OxinferError('ERR_INVALID_SPEC', `the spec cannot be read as JSON: ${(e as Error).message}`, { cause: e })
    }
    return Pipeline.#create(text, options, null)
  }

  /** Loads a spec file; its model path is resolved relative to the file, and spec errors give the file's line (`line`, `column`). */
  static async load(path: string, options: Omit<PipelineOptions, 'baseDir'> = {}): Promise<Pipeline> {
    if (typeof path !== 'string' || path === '') throw invalidArg('Pipeline.load: path must be a non-empty string')
    if (isPlainObject(options) && 'baseDir' in options) throw invalidArg('Pipeline.load: baseDir is the spec file\'s folder; use Pipeline.create to set another')
    const file = resolvePath(path)
    let text: string
    try {
      text = await native.readSpec(file)
    } catch (e) {
      throw fromNative(e)
    }
    return Pipeline.#create(text, { ...options, baseDir: dirname(file) }, file)
  }

  /** Checks the spec text natively (its version, shape and JSON paths), then loads its model and compiles it. */
  static async #create(text: string, options: PipelineOptions, file: string | null): Promise<Pipeline> {
    if (!isPlainObject(options)) throw invalidArg('Pipeline.create: options must be an object')
    checkKeys('pipeline', options, PIPELINE_OPTION_KEYS)
    const unknownFields = oneOf('Pipeline.create: unknownFields', options.unknownFields, native.UnknownFields, 'error')
    try {
      native.checkSpec(text, file)
    } catch (e) {
      throw fromNative(e)
    }
    const parsed = JSON.parse(text) as PipelineSpec
    const baseDir = options.baseDir ?? process.cwd()
    if (typeof baseDir !== 'string') throw invalidArg('Pipeline.create: baseDir must be a path string')
    const sessionOptions: SessionOptions = { ...(parsed.session ?? {}), ...(options.session ?? {}) }
    if (options.batching !== undefined) {
      // Pipeline runs batch in the session's scheduler, under its one policy.
      if (!isPlainObject(options.batching)) throw invalidArg('Pipeline.create: batching must be an object')
      checkKeys('pipeline batching', options.batching, PIPELINE_BATCHING_KEYS)
      sessionOptions.batching = { maxBatchSize: 64, ...(sessionOptions.batching ?? {}), ...options.batching }
      // A run inline on the JS thread would bypass the batch: asked for only.
      sessionOptions.inlineThresholdMicros ??= 0
    }
    const session = await Session.create(resolvePath(baseDir, parsed.model), sessionOptions)
    let n: NativePipeline
    try {
      n = await native.compilePipeline(internalsOf(session).native, text, resolvePath(baseDir), file)
    } catch (e) {
      await session.dispose()
      throw fromNative(e)
    }
    return new Pipeline(parsed, session, n, resolvePath(baseDir), unknownFields)
  }

  /** @internal A served pipeline, run in-process on the server's scheduler (see `serve`). */
  static overServed(spec: PipelineSpec, session: Session, n: NativePipeline, baseDir: string): Pipeline {
    return new Pipeline(spec, session, n, baseDir, 'error')
  }

  /** A copy of the spec (with fitted parameters once `fit` has run). */
  get spec(): PipelineSpec {
    return JSON.parse(JSON.stringify(this.#spec)) as PipelineSpec
  }

  /**
   * Record keys and columns that are not spec fields, ignored so far by
   * `run`, `runBatch` and iterable jobs (with `unknownFields: 'ignore'`; with
   * the default 'error' such a record is refused instead).
   */
  get ignoredFields(): number {
    return this.#unknown.ignored
  }

  /** The `unknownFields` policy this pipeline was created with. */
  get unknownFields(): NameOf<'UnknownFields'> {
    return this.#unknown.ignore ? 'ignore' : 'error'
  }

  /** The session that runs the model. */
  get session(): Session {
    return this.#session
  }

  /** Runs one record. Rejects with ERR_INVALID_INPUT (row 0, field) for a bad record. */
  run(record: Record<string, unknown>, options?: PipelineRunOptions): Promise<PipelineResult> {
    let batch: ColumnBatch
    try {
      // No options (the common call): nothing to check.
      if (options !== undefined) this.#checkRun(options)
      if (!isPlainObject(record)) throw new OxinferError('ERR_INVALID_INPUT', 'run: the record must be an object', { row: 0 })
      batch = this.#read(null, true, this.#unknown, this.#alloc, record)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    if (options === undefined) return this.#execute(batch, true, this.#decodeOne, undefined, false)
    const timings = options.timings === true
    return this.#execute(
      batch,
      true,
      timings ? (payload) => this.#one(readPacked(payload), true) : this.#decodeOne,
      options.signal as AbortSignal | undefined,
      timings,
      options.onTiming as ((t: RunTiming) => void) | undefined,
      options.timeoutMs as number | undefined,
      options.priority as number | undefined,
    )
  }

  #checkRun(options: PipelineRunOptions): void {
    if (!isPlainObject(options)) throw invalidArg('run: options must be an object')
    checkKeys('pipeline run', options, ['signal', 'timings', 'priority', 'timeoutMs', 'onTiming'])
    checkRequestOptions('run', options, this.#internals.priorityLevels)
  }

  /** A single run's result object (failFast: its only row has no error). */
  #one(named: Columns, timings: boolean): PipelineResult {
    const out = objects(named, 1, NONE_REJECTED, this.#spec.output)[0] as PipelineResult
    if (timings) out.timings = timingsOf(named)
    return out
  }

  #decodeOne = (payload: unknown): PipelineResult => this.#one(readPacked(payload), false)

  /** Runs a batch: an array of records, or columns (a typed array or array per field). */
  runBatch(records: Record<string, unknown>[], options?: PipelineBatchOptions & { output?: 'objects' }): Promise<(PipelineResult | PipelineRowError)[] & { timings?: StageTimings }>
  runBatch(records: Record<string, unknown>[] | PipelineColumnsInput, options: PipelineBatchOptions & { output: 'columns' }): Promise<PipelineColumns>
  runBatch(records: PipelineColumnsInput, options?: PipelineBatchOptions): Promise<(PipelineResult | PipelineRowError)[] & { timings?: StageTimings }>
  runBatch(records: Record<string, unknown>[] | PipelineColumnsInput, options?: PipelineBatchOptions): Promise<unknown> {
    let batch: ColumnBatch
    let failFast = true
    try {
      if (options !== undefined) {
        if (!isPlainObject(options)) throw invalidArg('runBatch: options must be an object')
        checkKeys('pipeline runBatch', options, ['signal', 'timings', 'output', 'errors', 'priority', 'timeoutMs', 'onTiming'])
        checkRequestOptions('runBatch', options, this.#internals.priorityLevels)
        const output = options.output ?? 'objects'
        if (output !== 'objects' && output !== 'columns') throw invalidArg(`runBatch: output must be 'objects' or 'columns', got ${showValue(output)}`)
        const errors = options.errors ?? 'throw'
        if (errors !== 'throw' && errors !== 'return') throw invalidArg(`runBatch: errors must be 'throw' or 'return', got ${showValue(errors)}`)
        failFast = errors === 'throw'
      }
      batch = this.#encode('runBatch', records, failFast)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const asColumns = options?.output === 'columns'
    const timings = options?.timings === true
    const { rows, rejected } = batch
    const decode = (payload: unknown): unknown => {
      const named = readPacked(payload)
      const out: (PipelineColumns | (PipelineResult | PipelineRowError)[]) & { timings?: StageTimings } = asColumns
        ? columns(named, rows, rejected, this.#spec.output)
        : objects(named, rows, rejected, this.#spec.output)
      if (timings) out.timings = timingsOf(named)
      return out
    }
    if (options === undefined) return this.#execute(batch, true, decode, undefined, false)
    return this.#execute(
      batch,
      failFast,
      decode,
      options.signal as AbortSignal | undefined,
      timings,
      options.onTiming as ((t: RunTiming) => void) | undefined,
      options.timeoutMs as number | undefined,
      options.priority as number | undefined,
    )
  }

  /**
   * Runs the pipeline over a whole source, in bounded memory, and returns the
   * running {@link BatchJob}. The source is
   * - a CSV or JSONL file path: read, run and (with `output`) written natively,
   *   `chunkSize` rows at a time, with at most `concurrency` chunks between
   *   reading and writing and at most `concurrency` undelivered to the
   *   iterator. CSV needs a header row naming the fields (other columns are
   *   ignored; an empty cell is missing; array and list cells are JSON arrays);
   *   JSONL has one object per line (blank lines skipped). Image fields cannot
   *   come from files. A row that does not parse is a bad row like any other.
   * - an (async) iterable of records (grouped into chunks of `chunkSize`),
   *   of arrays of records, or of column chunks (an object whose number,
   *   integer, boolean, category or text field holds an array or typed array);
   *   each array or column chunk is one chunk. Runs through `runBatch`.
   *
   * Results come in input order, as {@link PipelineJobChunk}s, or go to
   * `output`: JSONL lines `{"row", ...the result}` or `{"row", "error":
   * {code, field, message}}` (any source), or CSV (file sources). On failure
   * or abort the output file is removed. Bad options, a missing input file, an
   * unwritable output, an unfitted spec or a disposed session throw at once.
   */
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options: PipelineJobOptions & { results: 'columns' }): BatchJob<PipelineJobColumns>
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options?: PipelineJobOptions): BatchJob<PipelineJobChunk>
  runJob(source: string | AsyncIterable<unknown> | Iterable<unknown>, options: PipelineJobOptions = {}): BatchJob<PipelineJobChunk | PipelineJobColumns> {
    const pipeline = this
    return runPipelineJob(
      {
        fields: this.#fields,
        session: this.#internals,
        get native() {
          return pipeline.#native
        },
        get unfitted() {
          return pipeline.#unfitted
        },
        get output() {
          return pipeline.#spec.output
        },
        unknownFields: this.unknownFields,
        runBatch: (records, o) => this.runBatch(records as PipelineColumnsInput, o),
        runColumns: (records, failFast, signal) => {
          let batch: ColumnBatch
          try {
            batch = this.#encode('runJob', records, failFast)
          } catch (e) {
            return Promise.reject(fromNative(e))
          }
          return this.#execute(batch, failFast, readPacked, signal, false)
        },
      },
      source,
      options,
    )
  }

  /**
   * Learns every stage's parameters (imputation values, scaler statistics,
   * category vocabularies) from sample records, in float64, each stage on the
   * output of the ones before it. Resolves to the fitted spec, which this
   * pipeline uses from then on.
   */
  async fit(records: Record<string, unknown>[] | PipelineColumnsInput): Promise<PipelineSpec> {
    // Training records usually carry their label and ids: never refused here.
    const batch = this.#encode('fit', records, true, { ignore: true, ignored: 0 })
    if (batch.rows === 0) throw invalidArg('fit: needs at least one record')
    let fitted: string
    try {
      fitted = await native.fitPipeline(JSON.stringify(this.#spec), batch.flat)
    } catch (e) {
      throw fromNative(e)
    }
    const spec = JSON.parse(fitted) as PipelineSpec
    try {
      this.#native = await native.compilePipeline(this.#internals.native, fitted, this.#baseDir)
      this.#io = this.#native.waitsOnIo
      this.#unfitted = this.#native.unfitted
      // A recompiled spec has a new monitor: its events go to the same listeners.
      if (this.#drift.size > 0) this.#native.setDriftListener(hub.nativeHub, this.#drift.attach())
    } catch (e) {
      throw fromNative(e)
    }
    this.#spec = spec
    // The fitted vocabularies: category coding without a dictionary lookup.
    this.#groups = groupFields(spec.fields, spec.preprocess)
    this.#read = compileReader(this.#groups)
    this.#estimates = []
    return this.spec
  }

  /** Writes the spec as JSON; the model path is rewritten relative to the new file. */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || path === '') throw invalidArg('save: path must be a non-empty string')
    const { writeFile } = await import('node:fs/promises')
    const { relative } = await import('node:path')
    const abs = resolvePath(path)
    const spec = this.spec
    spec.model = relative(dirname(abs), resolvePath(this.#baseDir, this.#spec.model)) || this.#spec.model
    try {
      await writeFile(abs, JSON.stringify(spec, null, 2) + '\n')
    } catch (e) {
      throw new OxinferError('ERR_FILE', `cannot write the pipeline spec '${abs}': ${(e as Error).message}`, { path: abs, cause: e })
    }
  }

  /**
   * A reference profile of `records` for drift monitoring: each number and
   * category field as it arrives, and the predicted label and its score on
   * this pipeline's model. Put it in the spec as `monitor.reference`.
   * Records that fail are skipped for the predictions.
   */
  async profile(records: Record<string, unknown>[] | PipelineColumnsInput): Promise<Profile> {
    const batch = this.#encode('profile', records, false, { ignore: true, ignored: 0 })
    if (batch.rows === 0) throw invalidArg('profile: needs at least one record')
    try {
      return JSON.parse(await this.#native.profile(this.#internals.native, batch.flat)) as Profile
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Drift statistics over the current window, or null when the spec has no `monitor`. */
  drift(): DriftReport | null {
    const report = this.#native.drift()
    return report === null ? null : (JSON.parse(report) as DriftReport)
  }

  /**
   * Records the outcome of the prediction whose record carried `id` in the
   * spec's `monitor.feedback.idField`: the true class label (a string), or
   * the true value (a number) for a model with one score. Throws
   * ERR_INVALID_ARGUMENT for an unknown id (or one older than the last
   * `keep` predictions), a second outcome, or a truth of the wrong kind.
   */
  feedback(id: string, truth: string | number): void {
    if (typeof id !== 'string' || id === '') throw invalidArg('feedback: id must be a non-empty string')
    if (typeof truth !== 'string' && typeof truth !== 'number') throw invalidArg(`feedback: truth must be a class label (string) or a number, got ${showValue(truth)}`)
    try {
      this.#native.feedback(id, truth)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Writes the prediction log (`monitor.log`) to `path` as training data:
   * one row per logged prediction (id, time, inputs or their digest, label,
   * scores) with its outcome when feedback arrived. The log is flushed first.
   * Resolves to the rows written.
   */
  async exportLog(path: string, options: { format?: 'jsonl' | 'csv' } = {}): Promise<number> {
    if (typeof path !== 'string' || path === '') throw invalidArg('exportLog: path must be a file path')
    const format = options.format ?? (path.endsWith('.csv') ? 'csv' : 'jsonl')
    if (format !== 'jsonl' && format !== 'csv') throw invalidArg(`exportLog: format must be 'jsonl' or 'csv', got ${showValue(format)}`)
    try {
      return await this.#native.exportLog(resolvePath(path), format === 'csv')
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Commits the prediction log's queued rows now (they are otherwise
   * written every `flushMs` or `batchRows`). Throws ERR_FILE when a write
   * failed (its rows stay queued for the next try), and ERR_OVERLOADED when
   * the writer fell behind and dropped rows.
   */
  flushLog(): void {
    try {
      this.#native.flushLog()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Online quality over the last `monitor.feedback.window` outcomes, or null without `monitor.feedback`. */
  quality(): Quality | null {
    const q = this.#native.quality()
    return q === null ? null : (JSON.parse(q) as Quality)
  }

  /** What the requests of this pipeline's session did (see `Session.stats`): its runs, a graph's and the server's on the same session. */
  stats(): SessionStats {
    return this.session.stats()
  }

  /** The spec's business metrics (`monitor.metrics`) now, since compiling and over the window; null without any. */
  metrics(): BusinessMetric[] | null {
    const m = this.#native.businessMetrics()
    return m === null ? null : (JSON.parse(m) as BusinessMetric[])
  }

  /** Calls `listener` each time a monitored feature starts or stops drifting (see `monitor`). */
  on(event: 'drift', listener: DriftListener): this {
    if (event !== 'drift') throw invalidArg(`Pipeline.on: the only event is 'drift', got ${showValue(event)}`)
    if (typeof listener !== 'function') throw invalidArg('Pipeline.on: listener must be a function')
    if (!this.#spec.monitor) throw invalidArg("Pipeline.on('drift'): the spec has no monitor section")
    if (this.#drift.add(listener)) this.#native.setDriftListener(hub.nativeHub, this.#drift.attach())
    return this
  }

  off(event: 'drift', listener: DriftListener): this {
    if (event === 'drift' && this.#drift.remove(listener)) this.#native.setDriftListener(hub.nativeHub, this.#drift.attach())
    return this
  }

  /** Disposes the underlying session; runs still queued reject with ERR_DISPOSED. The prediction log is flushed first. */
  dispose(): Promise<void> {
    try {
      this.#native.flushLog()
    } catch {
      // A failed or lossy log was reported by flushLog and exportLog; disposing goes on.
    }
    if (this.#drift.size > 0) {
      this.#native.setDriftListener(hub.nativeHub, 0)
      this.#drift.clear()
    }
    return this.#session.dispose()
  }

  [disposeSymbol](): Promise<void> {
    return this.dispose()
  }

  /** Records (an array of objects) or columns (an object of arrays) as one batch; throws on a bad record with `failFast`. */
  #encode(what: string, records: Record<string, unknown>[] | PipelineColumnsInput, failFast: boolean, unknown = this.#unknown): ColumnBatch {
    if (Array.isArray(records)) return this.#read(records, failFast, unknown, this.#alloc)
    if (isPlainObject(records)) return fromColumns(this.#groups, records, failFast, unknown, this.#alloc)
    throw invalidArg(`${what}: records must be an array of objects or an object of columns`)
  }

  /**
   * A batch buffer of `n` numbers: a spare one of that length, else a new one.
   * Reusing them saves allocating, zeroing and collecting a buffer per batch
   * (about 5 µs for 1,024 records of 8 numbers, plus the cache misses of
   * fresh memory); the encoders write every number of it.
   */
  #alloc = (n: number): Float64Array => {
    const spare = this.#spare
    for (let i = spare.length - 1; i >= 0; i--) {
      if (spare[i].length === n) {
        const a = spare[i]
        spare[i] = spare[spare.length - 1]
        spare.pop()
        return a
      }
    }
    return new Float64Array(n)
  }

  /**
   * Runs a batch under the session's inline rule, its result decoded as it
   * settles. Each size class (rows rounded up to a power of two) keeps its
   * own estimate of engine time, so single records measured fast go inline
   * while batches of the same pipeline do not.
   */
  #execute<R>(batch: ColumnBatch, failFast: boolean, decode: (payload: unknown) => R, signal: AbortSignal | undefined, timings: boolean, onTiming?: (t: RunTiming) => void, timeoutMs?: number, priority?: number): Promise<R> {
    if (this.#unfitted) {
      try {
        this.#native.checkFitted()
      } catch (e) {
        return Promise.reject(fromNative(e))
      }
    }
    const internals = this.#internals
    const p = this.#native
    const flat = batch.flat
    const size = batch.rows <= 1 ? 0 : 32 - Math.clz32(batch.rows - 1)
    const data = flat[4] as Float64Array
    const spare = this.#spare
    return internals.execute({
      // A run that waits on the network (a lookup) never goes on the JS thread: its estimate stays unknown.
      estimate: this.#io ? { micros: Number.POSITIVE_INFINITY } : (this.#estimates[size] ??= { micros: Number.POSITIVE_INFINITY }),
      // A run nothing could join (no batching, or a batch already full) is
      // submitted at once, so it starts while the turn encodes the next one.
      submit:
        batch.rows < internals.maxBatchSize
          ? (id) => this.#outbox.push(id, flat, failFast, timings, timeoutMs ?? internals.timeoutMs, priority)
          : (id) => this.#outbox.pushNow(id, flat, failFast, timings, timeoutMs ?? internals.timeoutMs, priority),
      sync: () => p.runSync(internals.native, flat, failFast, timings),
      // A run that delivered its result has finished with its batch: the
      // buffer is free for the next batch (a few, of up to 1 MB each).
      decode: (payload) => {
        const out = decode(payload)
        if (spare.length < SPARE_BUFFERS && data.length <= SPARE_MAX) spare.push(data)
        return out
      },
      signal,
      keepAlive: flat,
      onTiming,
    })
  }
}
