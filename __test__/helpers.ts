import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'

import { OxinferError } from '../index.js'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const fixture = (name: string): string => join(root, '__test__', 'fixtures', name)
export const require = createRequire(join(root, 'package.json'))

export const ortLibrary = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin/napi-v6/linux/x64/libonnxruntime.so.1')

export function readJson<T = any>(name: string): T {
  return JSON.parse(readFileSync(fixture(name), 'utf8')) as T
}

/** Asserts that `p` rejects with an OxinferError of `code`, and returns it. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<OxinferError> {
  let err: unknown
  try {
    await p
  } catch (e) {
    err = e
  }
  expect(err, `expected a rejection with ${code}`).toBeInstanceOf(OxinferError)
  expect((err as OxinferError).code, (err as Error).message).toBe(code)
  return err as OxinferError
}

/** Asserts that `fn` throws an OxinferError of `code`, and returns it. */
export function throwsWith(fn: () => unknown, code: string): OxinferError {
  let err: unknown
  try {
    fn()
  } catch (e) {
    err = e
  }
  expect(err, `expected a throw with ${code}`).toBeInstanceOf(OxinferError)
  expect((err as OxinferError).code, (err as Error).message).toBe(code)
  return err as OxinferError
}

/** Reads a 16-bit PCM mono WAV into float32 samples in [-1, 1). */
export function readWav(path: string): { sampleRate: number; samples: Float32Array } {
  const buf = readFileSync(path)
  let off = 12
  let sampleRate = 0
  while (off < buf.length) {
    const id = buf.toString('ascii', off, off + 4)
    const size = buf.readUInt32LE(off + 4)
    if (id === 'fmt ') {
      expect(buf.readUInt16LE(off + 8)).toBe(1) // PCM
      expect(buf.readUInt16LE(off + 10)).toBe(1) // mono
      sampleRate = buf.readUInt32LE(off + 12)
      expect(buf.readUInt16LE(off + 22)).toBe(16)
    } else if (id === 'data') {
      const n = size / 2
      const samples = new Float32Array(n)
      for (let i = 0; i < n; i++) samples[i] = buf.readInt16LE(off + 8 + 2 * i) / 32768
      return { sampleRate, samples }
    }
    off += 8 + size + (size % 2)
  }
  throw new Error(`no data chunk in ${path}`)
}

/** Penguins records as a served pipeline's input tensors (KServe v2 JSON; missing numbers as 'NaN'). */
export function penguinTensors(rows: Record<string, unknown>[]) {
  const str = (k: string) => rows.map((r) => (r[k] == null ? '' : String(r[k])))
  const num = (k: string) => rows.map((r) => (typeof r[k] === 'number' ? (r[k] as number) : 'NaN'))
  const n = rows.length
  return [
    { name: 'island', datatype: 'BYTES', shape: [n], data: str('island') },
    { name: 'bill_length_mm', datatype: 'FP64', shape: [n], data: num('bill_length_mm') },
    { name: 'bill_depth_mm', datatype: 'FP64', shape: [n], data: num('bill_depth_mm') },
    { name: 'flipper_length_mm', datatype: 'FP64', shape: [n], data: num('flipper_length_mm') },
    { name: 'body_mass_g', datatype: 'FP64', shape: [n], data: num('body_mass_g') },
    { name: 'sex', datatype: 'BYTES', shape: [n], data: str('sex') },
  ]
}

/** A TCP port free on loopback now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}
