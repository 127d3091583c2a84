// The internal interface of a session: what the classes built on a session
// (pipelines) may use of it beyond its public API. Each Session registers its
// internals here when it is made; nothing of this is exported by the package.
import type { NativeSession } from '../native'
import type { RunTiming } from '../payload'
import type { Estimate } from './execute'

/** @internal One unit of work for `execute`: how to queue it, run it inline, and read its result. */
export interface Unit<R> {
  /** The running estimate of its engine time, which the inline rule reads and updates. */
  estimate: Estimate
  /** Queues it natively under the hub id given (throws, or settles through the hub, on refusal). */
  submit: (id: number) => void
  /** Runs it on the JS thread; returns its payload or an encoded error. */
  sync: () => unknown
  decode: (payload: unknown) => R
  signal: AbortSignal | undefined
  /** Kept referenced until it settles, so the input buffers outlive the native run. */
  keepAlive: unknown
  onTiming?: (t: RunTiming) => void
}

/** @internal What pipelines may use of a session beyond its public API. */
export interface SessionInternals {
  /** The native session. */
  readonly native: NativeSession
  /** `batching.priorityLevels`. */
  readonly priorityLevels: number
  /** `batching.timeoutMs`: the default bound on a request's time in the queue. */
  readonly timeoutMs: number
  /** `batching.maxBatchSize` (0: the session does not batch). */
  readonly maxBatchSize: number
  /** Whether dispose() was called. */
  readonly disposed: boolean
  /**
   * Runs one unit of work (a model run or a pipeline run) under the inline
   * rule: inline when measured-fast, the session idle and the turn's budget
   * allows; otherwise on the native workers, with abort support.
   */
  execute<R>(unit: Unit<R>): Promise<R>
  /**
   * Counts native work that runs outside `execute` (a file job, a stream's
   * calls) as active, so no run goes inline while it holds the slots.
   */
  hold(delta: 1 | -1): void
}

const registry = new WeakMap<object, SessionInternals>()

/** @internal Called once by the Session constructor. */
export function registerInternals(session: object, internals: SessionInternals): void {
  registry.set(session, internals)
}

/** @internal The internals of a session. */
export function internalsOf(session: object): SessionInternals {
  const internals = registry.get(session)
  if (internals === undefined) throw new TypeError('not an oxinfer Session')
  return internals
}
