import { execFileSync, spawnSync } from 'node:child_process'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import * as cjs from '../index.js'
import { fixture, ortLibrary, root } from './helpers'

/** Runs `code` (an ES module) in a fresh Node process; returns its JSON output. */
function child(code: string, env: Record<string, string | undefined> = {}): any {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-'))
  const file = join(dir, 'main.mjs')
  writeFileSync(file, code)
  const clean = { ...process.env }
  delete clean.OXINFER_ORT_DYLIB
  delete clean.ORT_DYLIB_PATH
  const r = spawnSync(process.execPath, [file], { env: { ...clean, ...env }, encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`child exited ${r.status} ${r.signal}: ${r.stderr}\n${r.stdout}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

const ox = JSON.stringify(join(root, 'index.js'))
const catchCode = `const code = (f) => { try { f(); return 'ok' } catch (e) { return e.code + ': ' + e.message } }
const codeAsync = async (p) => { try { await p; return 'ok' } catch (e) { return e.code + ': ' + e.message } }`

describe('finding and loading the ONNX Runtime library', () => {
  it('a missing library fails with ERR_FILE naming the path, and is never retried', () => {
    const out = child(
      `import { createRequire } from 'node:module'
      const { versions, Session, configure } = createRequire(import.meta.url)(${ox})
      ${catchCode}
      const first = code(() => versions())
      const second = await codeAsync(Session.create(${JSON.stringify(fixture('tiny_mlp.onnx'))}))
      const switchLib = code(() => configure({ ortLibrary: ${JSON.stringify(ortLibrary)} }))
      const third = code(() => versions())
      console.log(JSON.stringify({ first, second, switchLib, third }))`,
      { OXINFER_ORT_DYLIB: '/nonexistent/libonnxruntime.so.1' },
    )
    expect(out.first).toMatch(/^ERR_FILE: .*\/nonexistent\/libonnxruntime\.so\.1/)
    expect(out.second).toBe(out.first)
    expect(out.switchLib).toMatch(/^ERR_INVALID_ARGUMENT/)
    expect(out.third).toBe(out.first)
  })

  it('a file that is not ONNX Runtime fails with ERR_UNSUPPORTED and the reason', () => {
    const addon = join(root, 'oxinfer.linux-x64-gnu.node')
    const out = child(
      `import { createRequire } from 'node:module'
      const { versions } = createRequire(import.meta.url)(${ox})
      ${catchCode}
      console.log(JSON.stringify({ r: code(() => versions()) }))`,
      { OXINFER_ORT_DYLIB: addon },
    )
    expect(out.r).toMatch(/^ERR_UNSUPPORTED: .*OrtGetApiBase/)
  })

  it('follows the documented order: configure, OXINFER_ORT_DYLIB, ORT_DYLIB_PATH, then packages', () => {
    const script = (pre: string) => `import { createRequire } from 'node:module'
      const { versions, configure } = createRequire(import.meta.url)(${ox})
      ${catchCode}
      ${pre}
      console.log(JSON.stringify({ r: code(() => versions()) }))`
    const bad = '/nonexistent/libonnxruntime.so.1'
    expect(child(script(`configure({ ortLibrary: ${JSON.stringify(ortLibrary)} })`), { OXINFER_ORT_DYLIB: bad }).r).toBe('ok')
    expect(child(script(''), { OXINFER_ORT_DYLIB: ortLibrary, ORT_DYLIB_PATH: bad }).r).toBe('ok')
    expect(child(script(''), { OXINFER_ORT_DYLIB: bad, ORT_DYLIB_PATH: ortLibrary }).r).toMatch(/nonexistent/)
    expect(child(script(''), { ORT_DYLIB_PATH: ortLibrary }).r).toBe('ok')
    expect(child(script(''), {}).r).toBe('ok')
  })

  it('shares one library with onnxruntime-node in the same process, in either order', () => {
    for (const ortFirst of [true, false]) {
      const out = child(
        `import { createRequire } from 'node:module'
        import { readFileSync } from 'node:fs'
        const require = createRequire(${JSON.stringify(join(root, 'package.json'))})
        const model = ${JSON.stringify(fixture('tiny_mlp.onnx'))}
        const x = new Float32Array(16)
        async function runOrt() {
          const ort = require('onnxruntime-node')
          const s = await ort.InferenceSession.create(model)
          return (await s.run({ x: new ort.Tensor('float32', x, [1, 16]) })).y.data[0]
        }
        async function runOx() {
          const { Session, Tensor } = require(${ox})
          const s = await Session.create(model)
          const r = (await s.run({ x: new Tensor('float32', x, [1, 16]) })).y.data[0]
          await s.dispose()
          return r
        }
        const a = ${ortFirst} ? await runOrt() : await runOx()
        const b = ${ortFirst} ? await runOx() : await runOrt()
        const libs = new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('libonnxruntime')).map((l) => l.slice(l.indexOf('/'))))
        console.log(JSON.stringify({ same: a === b, libs: [...libs] }))`,
      )
      expect(out.same).toBe(true)
      expect(out.libs).toHaveLength(1)
    }
  })
})

describe('module formats and process lifetime', () => {
  it('ESM and CJS see the same classes', () => {
    const out = child(
      `import * as esm from ${JSON.stringify(join(root, 'index.mjs'))}
      import { createRequire } from 'node:module'
      const c = createRequire(import.meta.url)(${ox})
      const names = Object.keys(c).filter((k) => k !== 'default' && k !== '__esModule')
      console.log(JSON.stringify({ err: esm.OxinferError === c.OxinferError, t: esm.Tensor === c.Tensor, s: esm.Session === c.Session, missing: names.filter((k) => esm[k] !== c[k]) }))`,
    )
    // Every CommonJS export is re-exported by the ESM entry, as the same object.
    expect(out).toEqual({ err: true, t: true, s: true, missing: [] })
    expect(typeof cjs.Session.create).toBe('function')
  })

  it('keeps the process alive while runs are in flight, and lets it exit after', () => {
    const out = child(
      `import { createRequire } from 'node:module'
      const { Session, Tensor } = createRequire(import.meta.url)(${ox})
      const s = await Session.create(${JSON.stringify(fixture('slow_loop.onnx'))}, { inlineThresholdMicros: 0 })
      const r = await s.run({ x: new Tensor('float32', new Float32Array(65536).fill(0.01), [256, 256]), iters: new Tensor('int64', BigInt64Array.from([300n]), []) })
      console.log(JSON.stringify({ dims: r.y.dims }))`,
    )
    expect(out.dims).toEqual([256, 256])
    // No dispose: the process must still exit by itself (spawnSync would time out otherwise).
  })

  it('a Rust panic becomes an error and the process lives on', () => {
    const out = child(
      `import { createRequire } from 'node:module'
      const require = createRequire(import.meta.url)
      const native = require(${JSON.stringify(join(root, 'binding.js'))})
      const { Session, Tensor, OxinferError } = require(${ox})
      let message = ''
      try { native.debugPanic() } catch (e) { message = String(e.message) }
      const s = await Session.create(${JSON.stringify(fixture('tiny_mlp.onnx'))})
      const r = await s.run({ x: new Tensor('float32', new Float32Array(16), [1, 16]) })
      console.log(JSON.stringify({ message, alive: r.y.dims }))`,
    )
    expect(out.message).toMatch(/panic/)
    expect(out.alive).toEqual([1, 2])
  })
})

describe('typescript declarations', () => {
  it('index.d.ts compiles against a consumer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'oxinfer-ts-'))
    writeFileSync(
      join(dir, 'use.ts'),
      `import { Session, Tensor, OxinferError, configure, versions, type ErrorCode } from ${JSON.stringify(join(root, 'index.js'))}
      async function main(): Promise<number> {
        configure({ logLevel: 'warning' })
        const s = await Session.create('m.onnx', { poolSize: 2, device: 'cuda:0', graphOptimization: 'basic' })
        const t = new Tensor('int64', new BigInt64Array(2), [1, 2])
        const out = await s.run({ x: t }, { outputs: ['y'], signal: AbortSignal.timeout(10) })
        const code: ErrorCode = new OxinferError('ERR_ABORTED', 'x').code
        void code; void versions().onnxruntime
        await s.dispose()
        return out.y.size
      }
      void main`,
    )
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs', '--moduleResolution', 'node', '--types', 'node', '--skipLibCheck', join(dir, 'use.ts')], {
      cwd: root,
      encoding: 'utf8',
    })
  })
})
