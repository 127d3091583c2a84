// Batch jobs: a session or a pipeline over a whole source, in bounded memory.
// The BatchJob handed to the caller, the common job options and progress, and
// the ordered driver of jobs whose chunks come from JS.
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'

import { invalidArg, OxinferError } from './errors'
import { checkKeys, intOption, isPlainObject } from './options'

/** Progress of a batch job, reported to `onProgress`. */
export interface JobProgress {
  rowsDone: number
  /** Rows that failed (with `errors: 'return'`). */
  errors: number
  seconds: number
  rowsPerSecond: number
  /** Total rows: the `total` option, or for files estimated from the bytes done so far (exact at the end). */
  total?: number
  /** Seconds left at the current rate, where the total is known. */
  etaSeconds?: number
  /** Files: input bytes up to the last row done, and the file's size. */
  bytesDone?: number
  bytesTotal?: number
}

/** What a finished job did. */
export interface JobSummary {
  rows: number
  errors: number
  seconds: number
  rowsPerSecond: number
}

/** Options of `Session.runJob` and `Pipeline.runJob`. Unknown keys are refused. */
export interface JobOptions {
  /** Cancels the job: it stops reading, terminates running chunks, and `done` (and the iterator) reject with ERR_ABORTED. */
  signal?: AbortSignal
  /** Called at most every `progressIntervalMs`, and once at the end. An exception thrown by it fails the job. */
  onProgress?: (p: JobProgress) => void
  /** Default 250. */
  progressIntervalMs?: number
  /**
   * Chunks in flight at once (file jobs also read one ahead and write one
   * meanwhile), and chunks the iterator may hold until taken. Memory is
   * bounded by these chunks, whatever the source's length. Default: the number of cores.
   */
  concurrency?: number
  /** Iterable sources: the total row count, for ETA. */
  total?: number
}

/** Session jobs also choose outputs, as `run` does. */
export interface SessionJobOptions extends JobOptions {
  outputs?: string[]
}

/** Makes a BatchJob (set once, by the class); see {@link newBatchJob}. */
let makeJob: <T>(limit: number, taken: () => void, cancel: () => void, materialize?: (raw: unknown) => T) => BatchJob<T>

/**
 * @internal A new BatchJob: its consumer may hold `limit` items not yet taken;
 * `taken` is called as each is taken, `cancel` when the consumer stops early,
 * and `materialize` builds an item from what was pushed, when it is taken.
 */
export function newBatchJob<T>(limit: number, taken: () => void, cancel: () => void, materialize?: (raw: unknown) => T): BatchJob<T> {
  return makeJob(limit, taken, cancel, materialize)
}

/**
 * A running batch job. Iterate it (once) for its results, in input order; or,
 * when it writes a file, await `done`. Breaking out of the iteration aborts the
 * job. `done` rejects when the job fails or is aborted (it is marked handled,
 * so an ignored `done` does not crash the process).
 */
export class BatchJob<T> implements AsyncIterable<T> {
  static {
    makeJob = (limit, taken, cancel, materialize) => new BatchJob(limit, taken, cancel, materialize)
  }

  /** Resolves when every row is done (and any output file is flushed). */
  readonly done: Promise<JobSummary>
  #queue: unknown[] = []
  /** Builds an item from what was queued, when the consumer takes it (so that cost is the consumer's, not the delivery's). */
  #materialize: (raw: unknown) => T
  #wake: (() => void) | undefined
  #space: (() => void) | undefined
  #ended = false
  #error: unknown
  #iterating = false
  #limit: number
  #taken: () => void
  #cancel: () => void
  #settle!: [(s: JobSummary) => void, (e: unknown) => void]

  /** Made by Session.runJob and Pipeline.runJob. */
  private constructor(limit: number, taken: () => void, cancel: () => void, materialize: (raw: unknown) => T = (x) => x as T) {
    this.#materialize = materialize
    this.#limit = limit
    this.#taken = taken
    this.#cancel = cancel
    this.done = new Promise<JobSummary>((resolve, reject) => {
      this.#settle = [resolve, reject]
    })
    this.done.catch(() => {})
  }

  /** @internal */
  push(item: unknown): void {
    if (this.#ended) return
    this.#queue.push(item)
    this.#poke()
  }

  /** @internal Resolves when the consumer has room for another item. */
  room(): Promise<void> {
    if (this.#queue.length < this.#limit || this.#ended) return Promise.resolve()
    return new Promise((resolve) => {
      this.#space = resolve
    })
  }

  /** @internal */
  finish(summary: JobSummary): void {
    if (this.#ended) return
    this.#ended = true
    this.#settle[0](summary)
    this.#poke()
  }

  /** @internal */
  fail(e: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = e
    this.#queue.length = 0
    this.#settle[1](e)
    this.#poke()
  }

  /** @internal Whether `done` has settled. */
  get settled(): boolean {
    return this.#ended
  }

  #poke(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
    if (this.#ended) {
      const s = this.#space
      this.#space = undefined
      s?.()
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) throw invalidArg('a BatchJob can be iterated only once')
    this.#iterating = true
    const next = async (): Promise<IteratorResult<T>> => {
      for (;;) {
        if (this.#queue.length > 0) {
          const value = this.#materialize(this.#queue.shift())
          this.#taken()
          const s = this.#space
          this.#space = undefined
          s?.()
          return { value, done: false }
        }
        if (this.#ended) {
          if (this.#error !== undefined) throw this.#error
          return { value: undefined, done: true }
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    }
    return {
      next,
      return: async (): Promise<IteratorResult<T>> => {
        if (!this.#ended) this.#cancel()
        this.#queue.length = 0
        return { value: undefined, done: true }
      },
    }
  }
}

/** @internal The common job options, read. */
export interface ResolvedJobOptions {
  signal?: AbortSignal
  onProgress?: (p: JobProgress) => void
  intervalMs: number
  concurrency: number
  total?: number
}

/** @internal Reads the common job options; throws ERR_INVALID_ARGUMENT. */
export function jobOptions(what: string, options: unknown, extra: readonly string[]): ResolvedJobOptions {
  if (!isPlainObject(options)) throw invalidArg(`${what}: options must be an object`)
  checkKeys(what, options, ['signal', 'onProgress', 'progressIntervalMs', 'concurrency', 'total', ...extra])
  const o = options as Record<string, unknown>
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArg(`${what}: options.signal must be an AbortSignal`)
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw invalidArg(`${what}: options.onProgress must be a function`)
  if (o.total !== undefined && (typeof o.total !== 'number' || !Number.isInteger(o.total) || o.total < 0)) throw invalidArg(`${what}: options.total must be a non-negative integer`)
  return {
    signal: o.signal as AbortSignal | undefined,
    onProgress: o.onProgress as ((p: JobProgress) => void) | undefined,
    intervalMs: intOption(o, 'progressIntervalMs', 250, 0, 3_600_000),
    concurrency: intOption(o, 'concurrency', availableParallelism(), 1, 1024),
    total: o.total as number | undefined,
  }
}

/** @internal A job's progress report. */
export function progressOf(rowsDone: number, errors: number, seconds: number, total?: number, bytesDone?: number, bytesTotal?: number): JobProgress {
  const p: JobProgress = { rowsDone, errors, seconds, rowsPerSecond: seconds > 0 ? rowsDone / seconds : 0 }
  if (bytesTotal !== undefined) {
    p.bytesDone = bytesDone
    p.bytesTotal = bytesTotal
    if (total === undefined && bytesDone! > 0) total = bytesDone! >= bytesTotal ? rowsDone : Math.round((rowsDone * bytesTotal) / bytesDone!)
  }
  if (total !== undefined) {
    p.total = total
    if (p.rowsPerSecond > 0) p.etaSeconds = Math.max(0, total - rowsDone) / p.rowsPerSecond
  }
  return p
}

/** @internal The error of a job aborted through its signal. */
export function abortedJob(signal: AbortSignal | undefined): OxinferError {
  return new OxinferError('ERR_ABORTED', 'the job was aborted', { cause: signal?.reason })
}

/** @internal Moves an error's row from its chunk into the whole input. */
export function shiftRow(e: unknown, firstRow: number): unknown {
  if (!(e instanceof OxinferError) || e.row === undefined || firstRow === 0) return e
  const row = e.row + firstRow
  // Messages made in JS name the row too.
  return new OxinferError(e.code, e.message.replace(/^row \d+: /, `row ${row}: `), { input: e.input, row, field: e.field, stage: e.stage, cause: e.cause })
}

/**
 * @internal Drives a job whose chunks come from JS: up to `concurrency` chunks run at
 * once, results are pushed in input order, and a chunk is only pulled when the
 * consumer has room, so memory stays bounded whatever the source's length.
 */
export function driveChunks<C, R>(
  job: BatchJob<R>,
  chunks: AsyncIterator<C>,
  run: (chunk: C, firstRow: number, signal: AbortSignal) => Promise<R>,
  rowsOf: (chunk: C) => number,
  errorsOf: (result: R) => number,
  o: ResolvedJobOptions,
  inner: AbortController,
  sink?: ResultSink<R>,
): void {
  const t0 = performance.now()
  let rowsDone = 0
  let errors = 0
  let lastProgress = t0
  const report = (force: boolean): void => {
    const now = performance.now()
    if (!o.onProgress || (!force && now - lastProgress < o.intervalMs)) return
    lastProgress = now
    o.onProgress(progressOf(rowsDone, errors, (now - t0) / 1000, o.total))
  }
  const onAbort = (): void => inner.abort(o.signal?.reason)
  o.signal?.addEventListener('abort', onAbort, { once: true })
  // Waits that an abort must cut short: a source that never yields, a consumer that never takes.
  const ABORTED = Symbol('aborted')
  const stopped = new Promise<typeof ABORTED>((resolve) => inner.signal.addEventListener('abort', () => resolve(ABORTED), { once: true }))
  void (async () => {
    const flight: { p: Promise<R>; rows: number }[] = []
    let firstRow = 0
    let eof = false
    try {
      for (;;) {
        while (!eof && flight.length < o.concurrency && !inner.signal.aborted) {
          const n = await Promise.race([chunks.next(), stopped])
          if (n === ABORTED) break
          if (n.done) {
            eof = true
            break
          }
          const rows = rowsOf(n.value)
          const p = run(n.value, firstRow, inner.signal)
          p.catch(() => {})
          flight.push({ p, rows })
          firstRow += rows
        }
        if (inner.signal.aborted) throw abortedJob(o.signal)
        const head = flight.shift()
        if (!head) break
        const r = await head.p
        if (sink) await Promise.race([sink.write(r), stopped])
        else await Promise.race([job.room(), stopped])
        if (inner.signal.aborted || job.settled) throw abortedJob(o.signal)
        if (!sink) job.push(r)
        rowsDone += head.rows
        errors += errorsOf(r)
        report(false)
      }
      await sink?.close()
      report(true)
      const seconds = (performance.now() - t0) / 1000
      job.finish({ rows: rowsDone, errors, seconds, rowsPerSecond: seconds > 0 ? rowsDone / seconds : 0 })
    } catch (e) {
      inner.abort()
      await Promise.allSettled([...flight.map((f) => f.p), sink?.discard()])
      job.fail(inner.signal.aborted && o.signal?.aborted ? abortedJob(o.signal) : e)
      void chunks.return?.()
    } finally {
      o.signal?.removeEventListener('abort', onAbort)
    }
  })()
}

/** @internal Where an iterable job's results go instead of the iterator. */
export interface ResultSink<R> {
  /** Resolves once the stream takes more (backpressure). */
  write(r: R): Promise<void>
  close(): Promise<void>
  /** Drops the partial file. */
  discard(): Promise<void>
}

/** @internal The iterator of an (async) iterable source; throws ERR_INVALID_ARGUMENT for anything else. */
export function iteratorOf(source: unknown, what: string): AsyncIterator<unknown> | Iterator<unknown> {
  const s = source as { [Symbol.asyncIterator]?: () => AsyncIterator<unknown>; [Symbol.iterator]?: () => Iterator<unknown> }
  if (s !== null && typeof s === 'object' && typeof s[Symbol.asyncIterator] === 'function') return s[Symbol.asyncIterator]!()
  if (s !== null && typeof s === 'object' && typeof s[Symbol.iterator] === 'function') return s[Symbol.iterator]!()
  throw invalidArg(`${what}: source must be a file path or an (async) iterable`)
}

/**
 * @internal A job over a source of feeds (one request per item, rows counted
 * along the first feed's axis 0): results in order, at most `concurrency`
 * in flight. Shared by `Session.runJob` and `Graph.runJob`.
 */
export function feedsJob<F, R>(source: unknown, what: string, o: ResolvedJobOptions, run: (feeds: F, signal: AbortSignal) => Promise<R>): BatchJob<R> {
  if (o.signal?.aborted) throw abortedJob(o.signal)
  const it = iteratorOf(source, what)
  const inner = new AbortController()
  const job = newBatchJob<R>(o.concurrency, () => {}, () => inner.abort())
  const rowsOf = (feeds: F): number => {
    const first = feeds !== null && typeof feeds === 'object' ? (Object.values(feeds)[0] as { dims?: readonly number[] } | undefined) : undefined
    return Number(first?.dims?.[0] ?? 0)
  }
  const chunks: AsyncIterator<F> = {
    next: async () => (await it.next()) as IteratorResult<F>,
    return: async () => {
      await it.return?.()
      return { value: undefined, done: true }
    },
  }
  driveChunks(job, chunks, (feeds, _firstRow, signal) => run(feeds, signal), rowsOf, () => 0, o, inner)
  return job
}
