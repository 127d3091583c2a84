// What the inline rule needs besides the session: the JS thread's budget of
// inline work per event-loop turn, the running estimates of engine time, and
// the settler of a plain queued run.
import { fromNative } from '../errors'
import type { Tensor } from '../tensor'

/** Inline work done on the JS thread in the current event-loop turn, in ms. */
let turnSpentMs = 0
let turnResetPending = false
const TURN_BUDGET_MS = 1

/** Whether inline work of `micros` still fits in this turn's budget. */
export function withinTurnBudget(micros: number): boolean {
  return turnSpentMs + micros / 1000 <= TURN_BUDGET_MS
}

/** Charges `ms` of inline work to this turn. */
export function chargeTurn(ms: number): void {
  turnSpentMs += ms
  if (!turnResetPending) {
    turnResetPending = true
    setImmediate(() => {
      turnSpentMs = 0
      turnResetPending = false
    })
  }
}

/** A running estimate of one kind of work's engine time. */
export interface Estimate {
  micros: number
}

/** Runs per native submission at most (see Session#flush). */
export const FLUSH_MAX = 512

/** A plain queued `Session.run` waiting for its payload. */
export class QueuedRun {
  constructor(
    /** The session's decoding of a queued run's payload (it throws an encoded error). */
    readonly settled: (payload: unknown, names: readonly string[]) => Record<string, Tensor>,
    readonly resolve: (r: Record<string, Tensor>) => void,
    readonly reject: (e: unknown) => void,
    readonly names: readonly string[],
    /** Referenced until settled, so the input buffers outlive the native run. */
    readonly keepAlive: unknown,
  ) {}

  settle(payload: unknown): void {
    try {
      this.resolve(this.settled(payload, this.names))
    } catch (e) {
      this.reject(fromNative(e))
    }
  }
}
