// Stateful streams: a session's stream keeps the model's state in native
// memory between calls, and runs its calls in the order they are made.
import { disposeSymbol } from './dispose'
import { fromNative, invalidArg, OxinferError } from './errors'
import * as hub from './hub'
import type { NativeStream } from './native'
import { checkKeys, isPlainObject } from './options'
import { readTiming, type RunTiming } from './payload'
import { checkRequestOptions } from './session/options'
import type { Tensor, TensorLike } from './tensor'

/** Options of {@link Session.stream}. Unknown keys are refused. */
export interface StreamOptions {
  /**
   * State pairs, output name → input name: each call's value of the output is
   * the next call's value of the input. Example (Silero VAD): `{ stateN: 'state' }`.
   */
  state: Record<string, string>
  /**
   * Starting values by state input name. Default: zeros, shaped as the input
   * declares, with each dynamic dim taken as 1 (one stream is one row).
   */
  initialState?: Record<string, TensorLike>
  /** Outputs each call returns. Default: every output that is not a state output. */
  outputs?: readonly string[]
  /** Closes the stream after this many ms without a call; 0 never. Default 60 000. */
  idleTimeoutMs?: number
  /** Priority of the stream's calls, as in {@link RunOptions.priority}. */
  priority?: number
}

/** Options of {@link SessionStream.run}. */
export interface StreamRunOptions {
  /** Aborts the call: a waiting call is removed, a running one terminated; the state stays as it was. */
  signal?: AbortSignal
  /** Called with the call's timing breakdown just before its promise settles successfully. */
  onTiming?: (timing: RunTiming) => void
}

/** What a stream is made of: its native stream, and what its session lends it (see SessionStream's constructor). */
type StreamParts = [
  n: NativeStream,
  decode: (payload: unknown) => Record<string, Tensor>,
  flatten: (feeds: Record<string, TensorLike>) => unknown[],
  idleMs: number,
  priority: number | undefined,
  onClose: () => void,
  hold: (delta: 1 | -1) => void,
]

/** Makes a SessionStream (set once, by the class). */
let makeStream: (...parts: StreamParts) => SessionStream

/** @internal A stream over `n`, for {@link Session.stream}. */
export function newSessionStream(...parts: StreamParts): SessionStream {
  return makeStream(...parts)
}

/**
 * A stateful stream on a session (see {@link Session.stream}). Its state
 * lives in native memory; `run` takes the model's other inputs.
 */
export class SessionStream {
  static {
    makeStream = (...parts) => new SessionStream(...parts)
  }

  #native: NativeStream
  #decode: (payload: unknown) => Record<string, Tensor>
  #flatten: (feeds: Record<string, TensorLike>) => unknown[]
  #priority: number | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false
  #active = 0
  #drained: (() => void)[] = []
  #onClose: () => void
  #hold: (delta: 1 | -1) => void

  /** Made by {@link Session.stream}. */
  private constructor(...[n, decode, flatten, idleMs, priority, onClose, hold]: StreamParts) {
    this.#native = n
    this.#onClose = onClose
    this.#hold = hold
    this.#decode = decode
    this.#flatten = flatten
    this.#priority = priority
    if (idleMs > 0) {
      // Unref'd: an idle stream never keeps the process alive.
      this.#timer = setTimeout(() => {
        if (this.#active > 0) this.#timer?.refresh()
        else void this.close()
      }, idleMs)
      this.#timer.unref?.()
    }
  }

  /** Runs the model on `feeds` (every input but the state), after this stream's earlier calls. */
  run(feeds: Record<string, TensorLike>, options: StreamRunOptions = {}): Promise<Record<string, Tensor>> {
    if (this.#closed) return Promise.reject(new OxinferError('ERR_DISPOSED', 'the stream was closed'))
    const o = options
    let flat: unknown[]
    try {
      if (!isPlainObject(options)) throw invalidArg('stream run: options must be an object')
      checkKeys('stream run', options, ['signal', 'onTiming'])
      checkRequestOptions('stream run', options as Record<string, unknown>, Number.MAX_SAFE_INTEGER)
      flat = this.#flatten(feeds)
    } catch (e) {
      return Promise.reject(fromNative(e))
    }
    const signal = o.signal
    const onTiming = o.onTiming
    if (signal?.aborted) return Promise.reject(new OxinferError('ERR_ABORTED', 'the run was aborted before it started', { cause: signal.reason }))
    this.#timer?.refresh()
    const id = hub.nextId()
    return new Promise<Record<string, Tensor>>((resolve, reject) => {
      let aborted = false
      const finish = (): void => {
        hub.track(-1)
        this.#hold(-1)
        signal?.removeEventListener('abort', onAbort)
        if (--this.#active === 0) for (const f of this.#drained.splice(0)) f()
      }
      const onAbort = (): void => {
        aborted = true
        if (this.#native.abort(id) && hub.cancel(id)) {
          finish()
          reject(new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }))
        }
      }
      const settled = (payload: unknown): void => {
        finish()
        void flat
        if (typeof payload === 'string') {
          reject(aborted ? new OxinferError('ERR_ABORTED', 'the run was aborted', { cause: signal?.reason }) : fromNative(payload))
          return
        }
        try {
          const out = this.#decode(payload)
          if (onTiming) {
            try {
              onTiming(readTiming(payload, false))
            } catch {
              // A throwing observer must not turn a good result into a failure.
            }
          }
          resolve(out)
        } catch (e) {
          reject(fromNative(e))
        }
      }
      if (!hub.submit(id, settled, () => this.#native.call(id, flat, this.#priority), reject)) return
      this.#active++
      this.#hold(1)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Closes the stream and frees its state. Calls still waiting behind the
   * running one reject with ERR_DISPOSED; resolves once every call made has
   * settled. Later calls reject with ERR_DISPOSED.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      if (this.#timer !== undefined) clearTimeout(this.#timer)
      this.#native.close()
      this.#onClose()
    }
    if (this.#active === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  /** Whether the stream is closed (explicitly, by idle expiry, or with its session). */
  get closed(): boolean {
    return this.#closed
  }

  /** Calls made and not yet settled. */
  get pendingRuns(): number {
    return this.#active
  }

  [disposeSymbol](): Promise<void> {
    return this.close()
  }
}
