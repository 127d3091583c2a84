// The long recorded API fuzz run (issue #11): the generators and property of
// __test__/fuzz.test.ts (shared through __test__/fuzz-cases.mjs), for
// 1,000,000 cases by default, split across the properties as the suite
// splits its 10,000. Prints cases/s, the seed and the error codes seen per
// call; exits non-zero on the first violating case, printing the shrunk
// counterexample. Plain Node ESM over the compiled package:
//
//   node benchmark/fuzz.mjs [cases] [--seed N] [--only NAME] [--collect] [--detail] [--trace FILE]
//
// --collect keeps going past violations and prints each distinct one once
// (for triage); it still exits non-zero if there was any. --detail counts
// each error code's messages apart. --trace FILE keeps the case being run in
// FILE (overwritten per case), to find the input of a crash.
import { writeFileSync } from 'node:fs'

import * as fc from 'fast-check'

import * as lib from '../index.mjs'
import { Checker, KNOWN_BUGS, Violation } from '../__test__/fuzz-check.mjs'
import { PROPERTIES, runsOf, SEED, setup, teardown } from '../__test__/fuzz-cases.mjs'
import { show } from '../__test__/fuzz-values.mjs'

const args = process.argv.slice(2)
const flag = (name) => {
  const i = args.indexOf(name)
  if (i < 0) return undefined
  const v = args[i + 1]
  args.splice(i, 2)
  return v
}
const seed = Number(flag('--seed') ?? SEED)
const only = flag('--only')
const trace = flag('--trace')
const collect = args.includes('--collect')
const detail = args.includes('--detail')
const total = Number(args.find((a) => /^\d+$/.test(a)) ?? 1_000_000)
if (!Number.isInteger(seed) || !Number.isInteger(total) || total < 1) {
  console.error('usage: node benchmark/fuzz.mjs [cases] [--seed N] [--only NAME] [--collect] [--detail] [--trace FILE]')
  process.exit(2)
}

const properties = PROPERTIES.filter((p) => only === undefined || p.name === only)
console.log(`oxinfer API fuzz: ${total.toLocaleString('en')} cases, seed ${seed}${only ? `, only ${only}` : ''}${collect ? ', collecting' : ''}`)
const ctx = await setup(lib)
const check = new Checker(lib, { detail })
const distinct = new Map()
let failed = false
const t0 = performance.now()
let cases = 0

for (const p of properties) {
  const numRuns = only === undefined ? runsOf(p, total) : total
  const t = performance.now()
  const calls0 = check.calls
  const predicate = async (c) => {
    // A crash leaves no counterexample: --trace FILE writes each case before it runs.
    if (trace) writeFileSync(trace, `${p.name} ${show(c)}\n`)
    try {
      await p.exec(ctx, c, check)
    } catch (e) {
      if (!(e instanceof Violation) || !collect) throw e
      if (!distinct.has(e.signature)) {
        distinct.set(e.signature, e.message)
        console.log(`\nVIOLATION ${e.signature}\n${e.message}\n`)
      }
    }
  }
  const details = await fc.check(fc.asyncProperty(p.arbitrary, predicate), { seed, numRuns })
  const seconds = (performance.now() - t) / 1000
  cases += details.numRuns
  console.log(`${p.name.padEnd(22)} ${String(details.numRuns).padStart(8)} cases ${String(check.calls - calls0).padStart(8)} calls ${seconds.toFixed(1).padStart(7)} s ${(details.numRuns / seconds).toFixed(0).padStart(6)} cases/s`)
  if (details.failed) {
    failed = true
    const e = details.errorInstance
    console.log(`\nFAILED: ${p.name} after ${details.numRuns} cases (seed ${seed}, path ${details.counterexamplePath}, ${details.numShrinks} shrinks)`)
    console.log(e instanceof Violation ? e.message : `${e?.stack ?? e}`)
    break
  }
}

const seconds = (performance.now() - t0) / 1000
const { calls, outcomes, known, samples } = check.summary()
console.log(`\n${cases.toLocaleString('en')} cases, ${calls.toLocaleString('en')} calls in ${seconds.toFixed(1)} s: ${(cases / seconds).toFixed(0)} cases/s (seed ${seed})`)
console.log('\noutcomes (call → code: count):')
for (const [k, n] of outcomes) console.log(`  ${k}: ${n}`)
if (samples.length > 0) {
  console.log('\nfirst case of each ERR_BACKEND kind (a code that keeps the property, but may hide a bug):')
  for (const [k, v] of samples) console.log(`  ${k}\n    ${v}`)
}
if (known.length > 0) {
  console.log('\nknown bugs hit (TODO(fuzz) in __test__/fuzz-check.mjs):')
  for (const [id, n] of known) console.log(`  ${id}: ${n} — ${KNOWN_BUGS.find((b) => b.id === id).repro}`)
}
if (distinct.size > 0) {
  failed = true
  console.log(`\n${distinct.size} distinct violations:`)
  for (const sig of distinct.keys()) console.log(`  ${sig}`)
}

// The process still works after all that: a normal run succeeds.
const { y } = await ctx.sessions.tiny.run({ x: new lib.Tensor('float32', new Float32Array(16).fill(0.5), [1, 16]) })
const r = await ctx.pipelines.penguins.run({ island: 'Biscoe', bill_length_mm: 45.2, bill_depth_mm: 14.8, flipper_length_mm: 212, body_mass_g: 5200, sex: 'FEMALE' })
console.log(`\nafterwards: tiny_mlp y = [${Array.from(y.data, (v) => v.toFixed(4)).join(', ')}], penguins → ${r.label}`)
await teardown(ctx)
process.exit(failed ? 1 : 0)
