// The property of the API fuzz test (issue #11), shared by
// __test__/fuzz.test.ts and benchmark/fuzz.mjs: every call either succeeds
// or fails with an OxinferError whose code matches /^ERR_[A-Z_]+$/. A plain
// TypeError or RangeError (thrown, or wrapped as ERR_BACKEND), a non-Error
// rejection, a synchronous throw from a Promise-returning function, a hang
// or a crash is a violation. Known library bugs that the fuzzer hits are
// listed in KNOWN_BUGS (each a TODO(fuzz) with its reproduction): they are
// counted, not failed, until fixed. Plain ESM for vitest and plain Node.
import { show } from './fuzz-values.mjs'

export const CODE = /^ERR_[A-Z_]+$/

/** Messages of Rust panics that the addon catches and reports as ERR_BACKEND: a panic on user input is a bug. */
const PANIC = /panic|cannot convert float seconds to Duration|with overflow|index out of bounds|called `(Option|Result)::unwrap\(\)`|capacity overflow/

/** A call that breaks the property. */
export class Violation extends Error {
  constructor(call, what, input, error) {
    const detail = error === undefined ? '' : `\n  error: ${describeError(error)}`
    super(`${call}: ${what}${detail}\n  input: ${show(input)}`)
    this.name = 'Violation'
    this.call = call
    this.signature = `${call}: ${what}${error === undefined ? '' : ` (${errorSignature(error)})`}`
  }
}

function describeError(e) {
  if (!(e instanceof Error)) return `non-Error ${show(e)}`
  const cause = e.cause instanceof Error ? ` [cause ${e.cause.constructor.name}: ${e.cause.message.slice(0, 120)}]` : ''
  return `${e.constructor.name}${'code' in e ? ` code=${String(e.code)}` : ''}: ${String(e.message).slice(0, 200)}${cause}`
}

/** What kind of failure this is, without the parts that vary from case to case. */
function errorSignature(e) {
  if (!(e instanceof Error)) return `non-Error ${typeof e}`
  const head = String(e.message).split('\n')[0].replace(/\d+/g, 'N').replace(/'[^']*'|"[^"]*"/g, '…').slice(0, 80)
  const cause = e.cause instanceof Error ? ` <- ${e.cause.constructor.name}` : ''
  return `${e.constructor.name}${'code' in e ? ` ${String(e.code)}` : ''}: ${head}${cause}`
}

/** Errors that building a message with JSON.stringify or String() throws on odd values. */
const JSON_FAILURE = /serialize a BigInt|circular structure|Maximum call stack|Cannot convert object to primitive value/
const jsonFailure = (e) => (e instanceof TypeError || e instanceof RangeError) && JSON_FAILURE.test(e.message)
const wrapped = (e, test) => e?.code === 'ERR_BACKEND' && test(e.cause)

/**
 * Library bugs the fuzzer finds that are not fixed yet, so the suite stays
 * green: a violation matching one is counted under its id instead of failing
 * (`sync`: the violation is a synchronous throw from a Promise-returning
 * function). Each entry's `repro` is a minimal reproduction; remove the entry
 * once the bug is fixed. Bugs that crash, hang or panic noisily cannot be
 * counted here: their inputs are bounded instead, at the TODO(fuzz) notes in
 * fuzz-cases.mjs (image sizes, padded lengths) and fuzz-values.mjs (timeoutMs).
 */
export const KNOWN_BUGS = [
]

/**
 * Calls the API and checks the property, counting outcomes. `stats` maps
 * `call → code` (or 'ok') to counts, and known-bug ids to hits.
 */
export class Checker {
  constructor(lib, { timeoutMs = 30_000, detail = false } = {}) {
    this.lib = lib
    this.timeoutMs = timeoutMs
    /** Count each code's messages apart (for triage). */
    this.detail = detail
    this.outcomes = new Map()
    this.samples = new Map()
    this.known = new Map()
    this.calls = 0
  }

  #count(call, outcome) {
    const k = `${call} → ${outcome}`
    this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + 1)
    return k
  }

  /** The error a call failed with: counted when it keeps the property, a Violation (or a known bug) otherwise. */
  #failed(call, e, input) {
    const { OxinferError } = this.lib
    let what
    if (!(e instanceof Error)) what = 'failed with a non-Error'
    else if (!(e instanceof OxinferError)) what = `failed with a plain ${e.constructor.name}`
    else if (typeof e.code !== 'string' || !CODE.test(e.code)) what = `failed with an OxinferError whose code is ${show(e.code)}`
    else if (e.code === 'ERR_BACKEND' && (e.cause instanceof TypeError || e.cause instanceof RangeError)) what = `failed with a ${e.cause.constructor.name} wrapped as ERR_BACKEND`
    else if (e.code === 'ERR_BACKEND' && PANIC.test(e.message)) what = 'failed with a caught Rust panic (ERR_BACKEND)'
    else if (e.code === 'ERR_BACKEND' && /^Failed to convert/.test(e.message)) what = 'failed with an unchecked argument that the addon could not convert (ERR_BACKEND)'
    if (what === undefined) {
      // ERR_BACKEND keeps the property, but is the code most likely to hide a bug: keep its kinds apart.
      const detail = this.detail || e.code === 'ERR_BACKEND'
      const key = this.#count(call, detail ? `${e.code} (${errorSignature(e).replace(/^OxinferError ERR_[A-Z_]+: /, '').slice(0, 60)})` : e.code)
      // An ERR_BACKEND keeps its first input, for the long run's report.
      if (e.code === 'ERR_BACKEND' && !this.samples.has(key)) this.samples.set(key, `${describeError(e)}\n    input: ${show(input)}`)
      return
    }
    if (!this.#known(call, e, false)) throw new Violation(call, what, input, e)
  }

  /** Counts a violation that is a known bug (`sync`: thrown by a Promise-returning function); false when it is not one. */
  #known(call, e, sync) {
    const bug = KNOWN_BUGS.find((b) => (b.sync ?? false) === sync && b.match(call, e))
    if (!bug) return false
    this.known.set(bug.id, (this.known.get(bug.id) ?? 0) + 1)
    this.#count(call, `known bug ${bug.id}`)
    return true
  }

  /** A Promise-returning API: it must return a promise (never throw) that settles in time. Resolves to { ok, value } or { ok: false, error }. */
  async async(call, fn, input) {
    this.calls++
    let p
    try {
      p = fn()
    } catch (e) {
      if (this.#known(call, e, true)) return { ok: false, error: e }
      throw new Violation(call, 'threw synchronously (a Promise-returning function must reject)', input, e)
    }
    if (!(p instanceof Promise)) throw new Violation(call, `returned ${show(p)}, not a Promise`, input)
    let timer
    const hang = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Violation(call, `did not settle within ${this.timeoutMs} ms`, input)), this.timeoutMs)
    })
    try {
      const value = await Promise.race([p, hang])
      this.#count(call, 'ok')
      return { ok: true, value }
    } catch (e) {
      if (e instanceof Violation) throw e
      this.#failed(call, e, input)
      return { ok: false, error: e }
    } finally {
      clearTimeout(timer)
    }
  }

  /** A synchronous API (a constructor, decode): it returns or throws a coded OxinferError. */
  sync(call, fn, input) {
    this.calls++
    try {
      const value = fn()
      this.#count(call, 'ok')
      return { ok: true, value }
    } catch (e) {
      this.#failed(call, e, input)
      return { ok: false, error: e }
    }
  }

  /** Checks a row error inside a successful result (runBatch with errors: 'return'). */
  rowError(call, e, input) {
    const { OxinferError } = this.lib
    if (!(e instanceof OxinferError) || typeof e.code !== 'string' || !CODE.test(e.code)) {
      throw new Violation(call, 'returned a row error that is not a coded OxinferError', input, e)
    }
  }

  /** Outcome counts, most frequent first, and known-bug hits. */
  summary() {
    const outcomes = [...this.outcomes].sort((a, b) => b[1] - a[1])
    return { calls: this.calls, outcomes, known: [...this.known], samples: [...this.samples] }
  }
}

/** Awaits every call of a case, then throws the first violation (so no call is left running unawaited). */
export async function settleAll(promises) {
  const results = await Promise.allSettled(promises)
  const bad = results.find((r) => r.status === 'rejected')
  if (bad) throw bad.reason
}

/**
 * A fast-check reporter (for fc.assert's `reporter`) that fails with the
 * Violation's own short description of the shrunk counterexample: the
 * default report prints the whole input, and inputs here hold 1 MB strings
 * and objects nested 200,000 deep.
 */
export function reportViolation(details) {
  if (!details.failed) return
  const e = details.errorInstance
  const where = `seed ${details.seed}, path "${details.counterexamplePath}", after ${details.numRuns} runs and ${details.numShrinks} shrinks`
  throw new Error(`property failed (${where}):\n${e instanceof Violation ? e.message : (e?.stack ?? String(e))}`)
}
