// Completion delivery: one native wake-up settles a whole batch of runs. The
// one NativeHub, the table of requests waiting for their payload (by id), and
// the count of native work in flight that keeps the process alive.
import { fromNative } from './errors'
import { native } from './native'
import { setShared } from './payload'

/** Receives a run's payload (or encoded error) once. */
export type Settle = ((payload: unknown) => void) | { settle(payload: unknown): void }

const pending = new Map<number, Settle>()
let lastId = 0
let inFlight = 0

function settleWith(s: Settle, payload: unknown): void {
  if (typeof s === 'function') s(payload)
  else s.settle(payload)
}

function onCompletions(events: unknown[], shared: ArrayBuffer | null): void {
  setShared(shared)
  for (let i = 0; i < events.length; i += 2) {
    const id = events[i] as number
    const settle = pending.get(id)
    if (settle === undefined) continue
    pending.delete(id)
    try {
      settleWith(settle, events[i + 1])
    } catch {
      // A settle callback never throws by construction; guard the loop anyway.
    }
  }
  // Only views made while settling keep the shared buffer alive.
  setShared(null)
}

/** @internal The one hub: passed to every native session, which delivers through it. */
export const nativeHub = new native.NativeHub(onCompletions)

/** A fresh request id (ids are process-wide: requests of every kind share the table). */
export function nextId(): number {
  return ++lastId
}

/** Waits for request `id`'s payload: `settle` gets it once, when it arrives. */
export function register(id: number, settle: Settle): void {
  pending.set(id, settle)
}

/**
 * Waits for `id` with `settle` and sends it (`send` crosses into native code),
 * counting it in flight. If `send` throws, `id` is forgotten and `reject`
 * gets the error. Returns whether it was sent.
 */
export function submit(id: number, settle: Settle, send: () => void, reject: (e: unknown) => void): boolean {
  pending.set(id, settle)
  try {
    send()
  } catch (e) {
    pending.delete(id)
    reject(fromNative(e))
    return false
  }
  track(1)
  return true
}

/** Stops waiting for `id`; whether it was still waiting (false once settled). */
export function cancel(id: number): boolean {
  return pending.delete(id)
}

/** Whether `id` still waits for its payload. */
export function isPending(id: number): boolean {
  return pending.has(id)
}

/** Settles `id` now with `payload` (a refusal, say), if it still waits; whether it did. */
export function settleNow(id: number, payload: unknown): boolean {
  const settle = pending.get(id)
  if (settle === undefined) return false
  pending.delete(id)
  settleWith(settle, payload)
  return true
}

/** Keeps the process alive exactly while native work is in flight. */
export function track(delta: 1 | -1): void {
  const before = inFlight
  inFlight += delta
  if (before === 0 && inFlight > 0) nativeHub.ref()
  else if (before > 0 && inFlight === 0) nativeHub.unref()
}
