// The Gatherer: batches concurrent pipeline `run` calls on the JS side, with
// its own copy of the scheduler's policy (aging, maxQueue, timeouts, preferred
// sizes, the hold for more requests). Kept apart: it is to be replaced by
// batching in the core scheduler.
import { performance } from 'node:perf_hooks'

import { fromNative, invalidArg, OxinferError } from '../errors'
import * as hub from '../hub'
import { checkKeys, intOption, isPlainObject } from '../options'
import type { RunTiming } from '../payload'
import type { PipelineResult, PipelineRowError, PipelineRunOptions, StageTimings } from './spec'

/** Resolved {@link PipelineBatchingOptions}. */
export interface GathererConfig {
  maxBatchSize: number
  maxDelayMicros: number
  preferred: number[]
  maxQueue: number
  timeoutMs: number
  priorityLevels: number
}

export function gathererOptions(b: unknown): GathererConfig {
  if (!isPlainObject(b)) throw invalidArg('Pipeline.create: batching must be an object')
  checkKeys('pipeline batching', b, ['maxBatchSize', 'maxDelayMicros', 'preferredBatchSizes', 'maxQueue', 'timeoutMs', 'priorityLevels'])
  const maxBatchSize = intOption(b, 'maxBatchSize', 64, 1, 65536)
  const pref = b.preferredBatchSizes ?? []
  if (!Array.isArray(pref) || pref.some((p) => typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > maxBatchSize)) {
    throw invalidArg(`batching.preferredBatchSizes must be an array of integers from 1 to maxBatchSize (${maxBatchSize})`)
  }
  return {
    maxBatchSize,
    maxDelayMicros: intOption(b, 'maxDelayMicros', 0, 0, 10_000_000),
    preferred: [...new Set(pref as number[])].sort((x, y) => x - y),
    maxQueue: intOption(b, 'maxQueue', 0, 0, 2 ** 31 - 1),
    timeoutMs: intOption(b, 'timeoutMs', 0, 0, 2 ** 31 - 1),
    priorityLevels: intOption(b, 'priorityLevels', 1, 1, 255),
  }
}

/** A record waiting in a {@link Gatherer}. */
interface Waiting {
  record: Record<string, unknown>
  resolve: (r: PipelineResult) => void
  reject: (e: unknown) => void
  /** performance.now() at the call. */
  at: number
  deadline: number
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  timings: boolean
  onTiming: ((t: RunTiming) => void) | undefined
  /** 0 gathered, 1 in a running batch, 2 settled. */
  state: 0 | 1 | 2
}

export type GatheredRun = (
  records: Record<string, unknown>[],
  timings: boolean,
) => Promise<{ results: (PipelineResult | PipelineRowError)[]; timing: RunTiming | undefined; stages: StageTimings | undefined }>

/** An error about row `r` of a gathered batch, restated as its caller's row 0. */
function asOwnRow(e: OxinferError): OxinferError {
  if (e.row === undefined) return e
  return new OxinferError(e.code, e.message.replace(/^row \d+/, 'row 0'), { row: 0, field: e.field, input: e.input, stage: e.stage })
}

/**
 * Gathers concurrent pipeline `run` calls into batches: one batch per free
 * slot of the session, cut at once (or after `maxDelayMicros`), most urgent
 * priority first with the same 200 ms aging rule as the native queue.
 */
export class Gatherer {
  readonly options: GathererConfig
  #levels: Waiting[][]
  #queued = 0
  #running = 0
  #slots: number
  #run: GatheredRun
  #scheduled = false
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false

  constructor(options: GathererConfig, slots: number, run: GatheredRun) {
    this.options = options
    this.#slots = Math.max(1, slots)
    this.#run = run
    this.#levels = Array.from({ length: options.priorityLevels }, () => [])
  }

  add(record: Record<string, unknown>, o: PipelineRunOptions, disposed: boolean): Promise<PipelineResult> {
    if (this.#closed || disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed'))
    const signal = o.signal
    if (signal?.aborted) return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    if (this.options.maxQueue > 0 && this.#queued >= this.options.maxQueue) {
      return Promise.reject(new OxinferError('ERR_OVERLOADED', `the queue is full (${this.#queued} records waiting); try again later`))
    }
    const timeout = o.timeoutMs ?? this.options.timeoutMs
    const level = (o.priority ?? this.options.priorityLevels) - 1
    return new Promise<PipelineResult>((resolve, reject) => {
      const now = performance.now()
      const w: Waiting = { record, resolve, reject, at: now, deadline: timeout > 0 ? now + timeout : Infinity, signal, onAbort: undefined, timings: o.timings === true, onTiming: o.onTiming, state: 0 }
      if (signal) {
        w.onAbort = () => {
          if (w.state === 0) {
            const q = this.#levels[level]
            q.splice(q.indexOf(w), 1)
            this.#queued--
          } else if (w.state === 2) return
          // Running: its share of the batch's result is dropped.
          w.state = 2
          hub.track(-1)
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal.reason }))
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.#levels[level].push(w)
      this.#queued++
      // Gathered records keep the process alive like runs in flight.
      hub.track(1)
      this.#kick()
    })
  }

  /** Rejects everything still gathered (the session is being disposed). */
  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const q of this.#levels) {
      for (const w of q.splice(0)) this.#settle(w, () => w.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed')))
    }
    this.#queued = 0
  }

  #settle(w: Waiting, f: () => void): void {
    if (w.state === 2) return
    w.state = 2
    hub.track(-1)
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort)
    f()
  }

  #kick(): void {
    if (this.#running >= this.#slots || this.#queued === 0 || this.#scheduled) return
    const { maxBatchSize, maxDelayMicros, preferred } = this.options
    if (maxDelayMicros > 0 && this.#queued < maxBatchSize && !preferred.includes(this.#queued) && !(preferred.length > 0 && this.#queued >= preferred[preferred.length - 1])) {
      let oldest = Infinity
      for (const q of this.#levels) if (q.length > 0 && q[0].at < oldest) oldest = q[0].at
      const wait = oldest + maxDelayMicros / 1000 - performance.now()
      if (wait > 0) {
        this.#timer ??= setTimeout(() => {
          this.#timer = undefined
          this.#kick()
        }, Math.ceil(wait))
        return
      }
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    this.#scheduled = true
    // Every call made in this turn joins the batch.
    queueMicrotask(() => {
      this.#scheduled = false
      this.#flush()
    })
  }

  /** The next batch: most urgent first, unless a lower level's oldest has waited 200 ms. */
  #take(): Waiting[] {
    const now = performance.now()
    let start = this.#levels.findIndex((q) => q.length > 0)
    for (let l = start + 1; l < this.#levels.length; l++) {
      const q = this.#levels[l]
      if (q.length > 0 && now - q[0].at >= 200 && q[0].at < this.#levels[start][0].at) start = l
    }
    const order = [start, ...this.#levels.keys()].filter((l, i, a) => a.indexOf(l) === i)
    let cap = Math.min(this.options.maxBatchSize, this.#queued)
    const pref = this.options.preferred.filter((p) => p <= cap)
    if (pref.length > 0) cap = pref[pref.length - 1]
    const out: Waiting[] = []
    for (const l of order) {
      const q = this.#levels[l]
      while (q.length > 0 && out.length < cap) {
        const w = q.shift()!
        this.#queued--
        if (w.deadline <= now) {
          this.#settle(w, () => w.reject(new OxinferError('ERR_TIMEOUT', 'the record waited for its batch past its timeout')))
          continue
        }
        out.push(w)
      }
    }
    return out
  }

  #flush(): void {
    while (this.#running < this.#slots && this.#queued > 0) {
      const batch = this.#take()
      if (batch.length === 0) continue
      const started = performance.now()
      for (const w of batch) w.state = 1
      this.#running++
      let run: ReturnType<GatheredRun>
      try {
        run = this.#run(
          batch.map((w) => w.record),
          batch.some((w) => w.timings),
        )
      } catch (e) {
        run = Promise.reject(e)
      }
      run
        .then(
          ({ results, timing, stages }) => {
            batch.forEach((w, i) => {
              const r = results[i]
              if ('error' in r) {
                this.#settle(w, () => w.reject(asOwnRow(r.error)))
                return
              }
              this.#settle(w, () => {
                if (w.timings && stages) r.timings = stages
                if (w.onTiming && timing) {
                  try {
                    w.onTiming({ ...timing, queueMicros: timing.queueMicros + Math.round((started - w.at) * 1000), batchRequests: batch.length })
                  } catch {
                    // A throwing observer must not turn a good result into a failure.
                  }
                }
                w.resolve(r as PipelineResult)
              })
            })
          },
          (e) => {
            for (const w of batch) this.#settle(w, () => w.reject(fromNative(e)))
          },
        )
        .finally(() => {
          this.#running--
          this.#kick()
        })
    }
  }
}
