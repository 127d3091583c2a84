// A turn's queued submissions: every request made in one event-loop turn
// crosses into native code in a single call (taking the queue's lock once),
// at the end of the turn's synchronous work, so that the native scheduler
// sees them together and can batch them. Sessions and pipelines each own one.
import * as hub from '../hub'
import { FLUSH_MAX } from './execute'

/**
 * Submits a flat list of entries. The refused ones settle through the hub
 * with their error; it throws only when it queued none.
 */
export type SubmitMany = (list: unknown[]) => void

export class Outbox {
  #queue: unknown[] = []
  #scheduled = false
  readonly #stride: 5 | 6
  readonly #submit: SubmitMany

  /** Entries are `stride` values long (5 or 6) and start with the request's hub id. */
  constructor(stride: 5 | 6, submit: SubmitMany) {
    this.#stride = stride
    this.#submit = submit
  }

  /**
   * Queues one entry for this turn's submission: the id, then `stride - 1`
   * values (`e` only when the stride is 6). Plain parameters, not a rest
   * array: this runs once per queued request.
   */
  push(id: number, a: unknown, b: unknown, c: unknown, d: unknown, e?: unknown): void {
    this.#add(id, a, b, c, d, e)
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#flushNow)
    }
  }

  /**
   * Submits one entry at once, after those queued before it: for requests
   * that nothing else in the turn could join, so their run starts while the
   * turn goes on.
   */
  pushNow(id: number, a: unknown, b: unknown, c: unknown, d: unknown, e?: unknown): void {
    this.#add(id, a, b, c, d, e)
    this.#flush()
  }

  #add(id: number, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown): void {
    const q = this.#queue
    q.push(id, a, b, c, d)
    if (this.#stride === 6) q.push(e)
  }

  #flushNow = (): void => {
    this.#scheduled = false
    this.#flush()
  }

  #flush = (): void => {
    const stride = this.#stride
    let q = this.#queue
    if (q.length === 0) return
    this.#queue = []
    if (q.length > FLUSH_MAX * stride) {
      // Submitting costs about 1 µs a request: past the turn's 1 ms budget,
      // the rest goes in the next turn, so a huge burst never holds the loop.
      this.#queue = q.slice(FLUSH_MAX * stride)
      q = q.slice(0, FLUSH_MAX * stride)
      setImmediate(this.#flush)
    }
    // Requests aborted meanwhile were settled already: leave them out.
    for (let i = 0; i < q.length; i += stride) {
      if (!hub.isPending(q[i] as number)) {
        q = q.filter((_, k) => hub.isPending(q[k - (k % stride)] as number))
        break
      }
    }
    if (q.length === 0) return
    try {
      this.#submit(q)
    } catch (e) {
      // Nothing was queued: every entry fails with the error.
      const err = String((e as Error)?.message ?? e)
      for (let i = 0; i < q.length; i += stride) hub.settleNow(q[i] as number, err)
    }
  }
}
