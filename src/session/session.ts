// The Session class: a loaded model, its runs (inline or queued, one native
// submission per event-loop turn), streams, jobs over chunk sources, and dispose.
import { isAbsolute, resolve as resolvePath } from 'node:path'
import { performance } from 'node:perf_hooks'

import { disposeSymbol } from '../dispose'
import { fromNative, invalidArg, OxinferError } from '../errors'
import * as hub from '../hub'
import { feedsJob, jobOptions, type BatchJob, type SessionJobOptions } from '../job'
import { resolveLibrary } from '../library'
import { detectBackend, torchPlugin } from '../torch'
import { native, type NativeSession, type NativeStream, type NativeValueInfo } from '../native'
import { checkKeys, intOption, isPlainObject, showValue } from '../options'
import { payloadMicros, readTiming, unpack, type RunTiming } from '../payload'
import { newSessionStream, type SessionStream, type StreamOptions } from '../stream'
import { flattenFeeds, type Tensor, type TensorLike } from '../tensor'
import { outputValue, type OutputValue } from '../values'
import { chargeTurn, QueuedRun, withinTurnBudget, type Estimate } from './execute'
import { Outbox } from './outbox'
import { registerInternals, type Unit } from './internal'
import { checkRequestOptions, parseSessionOptions, type ModelMetadata, type RunOptions, type SessionOptions, type SessionStats, type ValueInfo } from './options'

/** %TypedArray%.prototype.slice: a copy even for a Node Buffer, whose own slice is a view. */
const typedSlice = Object.getPrototypeOf(Uint8Array.prototype).slice as (this: ArrayBufferView) => ArrayBufferView

/** Replaces each feed's data in a flat feed list with a copy (dims are the tensor's own frozen array). */
function ownInputs(flat: unknown[]): void {
  for (let i = 2; i < flat.length; i += 4) {
    const d = flat[i]
    try {
      flat[i] = Array.isArray(d) ? d.slice() : typedSlice.call(d as ArrayBufferView)
    } catch (e) {
      // A typed array whose buffer was transferred away (detached).
      throw new OxinferError('ERR_INVALID_ARGUMENT', `run: feed '${String(flat[i - 2])}' has data that cannot be read (${(e as Error).message})`, { input: String(flat[i - 2]), cause: e })
    }
  }
}

/** A loaded model. Any number of concurrent `run` calls is safe. */
export class Session {
  readonly inputs: readonly ValueInfo[]
  readonly outputs: readonly ValueInfo[]
  readonly metadata: ModelMetadata
  #native: NativeSession
  #inputNames: ReadonlySet<string>
  #outputNames: readonly string[]
  #threshold: number
  #estimate: Estimate = { micros: Number.POSITIVE_INFINITY }
  #timeoutMs = 0
  #priorityLevels = 1
  #maxBatchSize = 0
  #poolSize = 1
  /** Queued runs borrow input buffers instead of copying them (`zeroCopy`). */
  #zeroCopy = false
  #streams = new Set<SessionStream>()
  /** Runs waiting for this turn's native submission, 5 values each (see #enqueue). */
  #outbox: Outbox
  #active = 0
  #disposed = false
  #disposing: Promise<void> | undefined

  private constructor(n: NativeSession, threshold: number) {
    this.#native = n
    this.#threshold = threshold
    this.#outbox = new Outbox(5, (list) => n.submitMany(list))
    const session = this
    registerInternals(this, {
      native: n,
      get priorityLevels() {
        return session.#priorityLevels
      },
      get timeoutMs() {
        return session.#timeoutMs
      },
      get maxBatchSize() {
        return session.#maxBatchSize
      },
      get disposed() {
        return session.#disposed
      },
      execute(unit) {
        return session.#execute(unit)
      },
      hold(delta) {
        session.#hold(delta)
      },
    })
    const info = (v: NativeValueInfo): ValueInfo => Object.freeze({ name: v.name, type: v.type, dims: Object.freeze(v.dims.slice()) })
    this.inputs = Object.freeze(n.inputs.map(info))
    this.outputs = Object.freeze(n.outputs.map(info))
    const m = n.metadata
    this.metadata = Object.freeze({ ...m, custom: Object.freeze({ ...m.custom }) })
    this.#inputNames = new Set(this.inputs.map((i) => i.name))
    this.#outputNames = this.outputs.map((o) => o.name)
  }

  /**
   * @internal A session over a served model's own scheduler (see `serve`):
   * its runs share the server's queue and batches, and `dispose` lets go of
   * it without stopping the model.
   */
  static overServed(n: NativeSession, maxBatchSize: number): Session {
    // Never inline: the served model's slots are shared with HTTP requests,
    // and an inline run would wait on a busy slot on the JS thread.
    const o = parseSessionOptions(maxBatchSize > 1 ? { batching: { maxBatchSize }, inlineThresholdMicros: 0 } : { inlineThresholdMicros: 0 })
    const session = new Session(n, o.inline)
    session.#maxBatchSize = maxBatchSize > 1 ? maxBatchSize : o.native.maxBatchSize
    session.#poolSize = n.poolSize
    return session
  }

  /** Loads a model from a path or from its bytes, off the JS thread. */
  static async create(model: string | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    if (typeof model !== 'string' && !(model instanceof Uint8Array)) {
      throw invalidArg('Session.create: model must be a file path or a Uint8Array of model bytes')
    }
    const o = parseSessionOptions(options)
    if (typeof model === 'string' && model === '') throw invalidArg('Session.create: the model path is empty')
    const backend = o.backend ?? detectBackend(model)
    o.native.backend = backend
    // A TorchScript model needs the torch plugin, not ONNX Runtime.
    if (backend === 'torch') o.native.plugin = torchPlugin(o.native.device)
    const lib = backend === 'torch' ? '' : resolveLibrary()
    const source = typeof model === 'string' ? (isAbsolute(model) ? model : resolvePath(model)) : model
    let n: NativeSession
    try {
      n = await native.createSession(hub.nativeHub, source, o.native, lib)
    } catch (e) {
      throw fromNative(e)
    }
    const session = new Session(n, o.inline)
    session.#timeoutMs = o.timeoutMs
    session.#priorityLevels = o.priorityLevels
    session.#maxBatchSize = o.native.maxBatchSize
    session.#poolSize = n.poolSize
    session.#zeroCopy = o.native.zeroCopy
    return session
  }

  /**
   * Runs the model. Rejects (never throws) with an OxinferError. Outputs are
   * Tensors, except non-tensor ones (sequences, maps, optionals: see
   * `OutputValue`), which a caller types through `T`.
   */
  run<T extends { [K in keyof T]: OutputValue } = Record<string, Tensor>>(feeds: Record<string, TensorLike>, options?: RunOptions): Promise<T>
  run(feeds: Record<string, TensorLike>, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    let flat: unknown[]
    let outputs: string[] | undefined
    let signal: AbortSignal | undefined
    try {
      if (!isPlainObject(options)) throw invalidArg('run: options must be an object')
      checkKeys('run', options, ['outputs', 'signal', 'timeoutMs', 'priority', 'onTiming'])
      checkRequestOptions('run', options as Record<string, unknown>, this.#priorityLevels)
      if (options.outputs !== undefined) {
        // Indexed, not .some(): a sparse array's holes must count as non-strings.
        const list = options.outputs as unknown[]
        let ok = Array.isArray(list)
        for (let i = 0; ok && i < list.length; i++) ok = typeof list[i] === 'string'
        if (!ok) throw invalidArg('run: options.outputs must be an array of output names')
        outputs = [...new Set(list as string[])]
      }
      signal = options.signal as AbortSignal | undefined
      flat = this.#flatten(feeds)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const names = outputs ?? this.#outputNames
    const n = this.#native
    const est = this.#estimate
    // The common inline case without closures (see #execute for the rule).
    if (!this.#disposed && signal === undefined && options.onTiming === undefined && this.#active === 0 && est.micros < this.#threshold && withinTurnBudget(est.micros)) {
      const t0 = performance.now()
      try {
        const payload = n.runSync(flat, outputs ?? null)
        if (typeof payload === 'string') return Promise.reject(fromNative(payload))
        const micros = payloadMicros(payload)
        est.micros = 0.8 * est.micros + 0.2 * micros
        return Promise.resolve(this.#decode(payload, names))
      } catch (e) {
        return Promise.reject(fromNative(e))
      } finally {
        chargeTurn(performance.now() - t0)
      }
    }
    // Queued: the run reads its inputs later, so it gets its own copy now,
    // and a caller that writes to or transfers a buffer changes nothing.
    if (!this.#zeroCopy) {
      try {
        ownInputs(flat)
      } catch (e) {
        return Promise.reject(e)
      }
    }
    const timeoutMs = (options.timeoutMs as number | undefined) ?? this.#timeoutMs
    if (signal === undefined && options.onTiming === undefined && !this.#disposed && !(this.#active === 0 && est.micros < this.#threshold)) {
      // The common queued case: one settler object instead of closures.
      const id = hub.nextId()
      const p = new Promise<Record<string, Tensor>>((resolve, reject) => hub.register(id, new QueuedRun(this.#settled, resolve, reject, names, flat)))
      this.#active++
      hub.track(1)
      this.#enqueue(id, flat, outputs ?? null, timeoutMs, options.priority as number | undefined)
      return p
    }
    return this.#execute({
      estimate: this.#estimate,
      submit: (id) => this.#enqueue(id, flat, outputs ?? null, timeoutMs, options.priority as number | undefined),
      sync: () => n.runSync(flat, outputs ?? null),
      decode: (payload) => this.#decode(payload, names),
      signal,
      keepAlive: flat,
      onTiming: options.onTiming as ((t: RunTiming) => void) | undefined,
    })
  }

  /** A queued run settled (see QueuedRun). */
  #settled = (payload: unknown, names: readonly string[]): Record<string, Tensor> => {
    this.#active--
    hub.track(-1)
    if (typeof payload === 'string') throw fromNative(payload)
    const est = this.#estimate
    const micros = payloadMicros(payload)
    est.micros = est.micros === Number.POSITIVE_INFINITY ? micros : 0.8 * est.micros + 0.2 * micros
    return this.#decode(payload, names)
  }

  /** Queues a run for this turn's one native submission (see Outbox). */
  #enqueue(id: number, flat: unknown[], outputs: string[] | null, timeoutMs: number, priority: number | undefined): void {
    this.#outbox.push(id, flat, outputs, timeoutMs, priority)
  }

  /**
   * Runs the model over a whole source of feeds chunks (an async or sync
   * iterable of `Record<string, TensorLike>`, batched along axis 0 by the
   * caller): up to `concurrency` chunks run at once, results come out in input
   * order, one `Record<string, Tensor>` per chunk, and a chunk is pulled only
   * when there is room, so memory stays bounded. Progress counts rows (the
   * first feed's dims[0]). Files are refused: a model has no record schema;
   * use `Pipeline.runJob` for CSV or JSONL.
   */
  runJob(source: AsyncIterable<Record<string, TensorLike>> | Iterable<Record<string, TensorLike>>, options: SessionJobOptions = {}): BatchJob<Record<string, Tensor>> {
    const o = jobOptions('session runJob', options, ['outputs'])
    if (typeof source === 'string') throw invalidArg('Session.runJob: file sources need a record schema; use Pipeline.runJob for CSV or JSONL files')
    const outputs = (options as SessionJobOptions).outputs
    if (outputs !== undefined && (!Array.isArray(outputs) || outputs.some((x) => typeof x !== 'string'))) throw invalidArg('runJob: options.outputs must be an array of output names')
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    return feedsJob<Record<string, TensorLike>, Record<string, Tensor>>(source, 'Session.runJob', o, (feeds, signal) => this.run(feeds, outputs === undefined ? { signal } : { signal, outputs }))
  }

  #flatten(feeds: Record<string, TensorLike>): unknown[] {
    return flattenFeeds('run', 'feed', feeds)
  }

  #decode(payload: unknown, names: readonly string[]): Record<string, Tensor> {
    const out: Record<string, Tensor> = {}
    let k = 0
    unpack(payload, (_id, type, data, dims) => {
      out[names[k++]] = outputValue(type, data, dims)
    })
    return out
  }

  /**
   * Runs one unit of work (a model run or a pipeline run) under the inline
   * rule: inline when measured-fast, the session idle and the turn's budget
   * allows; otherwise on the native workers, with abort support.
   */
  #execute<R>(unit: Unit<R>): Promise<R> {
    const { estimate, submit, sync, decode, signal, keepAlive, onTiming } = unit
    if (this.#disposed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the session was disposed'))
    if (signal?.aborted) {
      return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    }
    const settle = (payload: unknown, inline: boolean): R => {
      if (typeof payload === 'string') throw fromNative(payload)
      const micros = payloadMicros(payload)
      estimate.micros = estimate.micros === Number.POSITIVE_INFINITY ? micros : 0.8 * estimate.micros + 0.2 * micros
      const result = decode(payload)
      if (onTiming !== undefined) {
        try {
          onTiming(readTiming(payload, inline))
        } catch {
          // A throwing observer must not turn a good result into a failure.
        }
      }
      return result
    }
    if (this.#active === 0 && estimate.micros < this.#threshold) {
      if (!withinTurnBudget(estimate.micros)) return this.#nextTurn(unit)
      const t0 = performance.now()
      try {
        return Promise.resolve(settle(sync(), true))
      } catch (e) {
        return Promise.reject(fromNative(e))
      } finally {
        chargeTurn(performance.now() - t0)
      }
    }
    const id = hub.nextId()
    return new Promise<R>((resolve, reject) => {
      let abortRequested = false
      const finish = (): void => {
        this.#active--
        hub.track(-1)
        signal?.removeEventListener('abort', onAbort)
      }
      const onAbort = (): void => {
        abortRequested = true
        const state = this.#native.abort(id)
        if (state !== 2 && hub.cancel(id)) {
          // Not executing (or already finished natively): settle now.
          finish()
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }))
        }
      }
      const settled = (payload: unknown): void => {
        finish()
        // Referenced until here, so the input buffers outlive the native run.
        void keepAlive
        if (abortRequested) {
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted while executing', { cause: signal?.reason }))
          return
        }
        try {
          resolve(settle(payload, false))
        } catch (e) {
          reject(e)
        }
      }
      if (!hub.submit(id, settled, () => submit(id), reject)) return
      this.#active++
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * A fast run on an idle session whose turn has spent its inline budget:
   * it waits for the next turn (after pending I/O) and is decided again
   * there, instead of paying a 100-200 µs hop to a worker. It counts as
   * active meanwhile, so the runs that follow it in this turn queue
   * natively, as before, rather than all waiting for the JS thread.
   */
  #nextTurn<R>(unit: Unit<R>): Promise<R> {
    this.#active++
    return new Promise<R>((resolve, reject) => {
      setImmediate(() => {
        this.#active--
        this.#execute(unit).then(resolve, reject)
      })
    })
  }

  /** Whether `dispose` has been called. */
  get disposed(): boolean {
    return this.#disposed
  }

  /**
   * Opens a stateful stream: the model's state outputs are fed back as its
   * state inputs from one call to the next, kept in native memory, and many
   * streams' calls are batched together when the session has `batching`
   * (declare each state input's and output's batch axis there). A stream's
   * calls run in the order they are made. Close it with `close()`, or let it
   * expire after `idleTimeoutMs` without calls; either frees its state.
   */
  stream(options: StreamOptions): SessionStream {
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    if (!isPlainObject(options)) throw invalidArg('stream: options must be an object')
    checkKeys('stream', options, ['state', 'initialState', 'outputs', 'idleTimeoutMs', 'priority'])
    const state = options.state
    if (!isPlainObject(state) || Object.keys(state).length === 0 || Object.values(state).some((v) => typeof v !== 'string')) {
      throw invalidArg("stream: options.state must map state outputs to the inputs they feed, e.g. { stateN: 'state' }")
    }
    if (options.outputs !== undefined && (!Array.isArray(options.outputs) || options.outputs.some((x) => typeof x !== 'string'))) {
      throw invalidArg('stream: options.outputs must be an array of output names')
    }
    const idle = intOption(options as Record<string, unknown>, 'idleTimeoutMs', 60_000, 0, 2 ** 31 - 1)
    checkRequestOptions('stream', options as Record<string, unknown>, this.#priorityLevels)
    let initial: unknown[] | null = null
    if (options.initialState !== undefined) {
      if (!isPlainObject(options.initialState)) throw invalidArg('stream: options.initialState must map state inputs to tensors')
      initial = this.#flatten(options.initialState as Record<string, TensorLike>)
    }
    const outputs = options.outputs === undefined ? null : [...new Set(options.outputs)]
    let n: NativeStream
    try {
      n = this.#native.openStream(Object.keys(state), Object.values(state), initial, outputs)
    } catch (e) {
      throw fromNative(e)
    }
    const names = outputs ?? this.#outputNames.filter((o) => !(o in state))
    const stream = newSessionStream(
      n,
      (payload) => this.#decode(payload, names),
      (feeds) => this.#flatten(feeds),
      idle,
      options.priority,
      () => this.#streams.delete(stream),
      // Stream calls hold the session's slots: no run goes inline meanwhile.
      (d) => this.#hold(d),
    )
    this.#streams.add(stream)
    return stream
  }

  /** Streams open on this session (see {@link Session.stream}). */
  get openStreams(): number {
    return this.#disposed ? 0 : this.#native.openStreams
  }

  /** How many runs may execute at once (`poolSize`). */
  get poolSize(): number {
    return this.#poolSize
  }

  /**
   * Counts native work that runs outside `#execute` (a file job, a stream's
   * calls) as active, so no run goes inline while it holds the slots.
   */
  #hold(delta: 1 | -1): void {
    this.#active += delta
  }

  /**
   * What this session's requests did since it loaded, counted natively:
   * successes, failures by error code, model executions (a merged batch
   * counts once), mean time per stage (queue, pre-processing, inference,
   * post-processing), and percentiles of queue + engine time. A pipeline's
   * and a graph's model runs on this session count here too.
   */
  stats(): SessionStats {
    if (this.#disposed) throw new OxinferError('ERR_DISPOSED', 'the session was disposed')
    return JSON.parse(this.#native.stats()) as SessionStats
  }

  /** Runs queued or executing on this session. */
  get pendingRuns(): number {
    return this.#active
  }

  /**
   * Frees the model. Resolves once the runs already executing have finished;
   * queued runs and every later run reject with ERR_DISPOSED.
   */
  dispose(): Promise<void> {
    if (this.#disposed) return Promise.resolve()
    this.#disposed = true
    for (const s of this.#streams) void s.close()
    const id = hub.nextId()
    this.#disposing = new Promise<void>((resolve) => {
      hub.register(id, () => {
        hub.track(-1)
        resolve()
      })
    })
    hub.track(1)
    let started = false
    try {
      started = this.#native.dispose(id)
    } catch {
      started = false
    }
    if (!started) hub.settleNow(id, undefined)
    return this.#disposing
  }

  [disposeSymbol](): Promise<void> {
    return this.dispose()
  }
}
