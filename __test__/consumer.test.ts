import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { fixture, root } from './helpers'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** `npm pack` into `dest` without running lifecycle scripts; returns the tarball path. */
function pack(dir: string, dest: string): string {
  const out = execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', dest], { cwd: dir, encoding: 'utf8' })
  return join(dest, out.trim().split('\n').pop()!)
}

describe('consumer install', () => {
  it('packs the main and platform packages, installs them elsewhere and runs a model without Rust or onnxruntime-node', () => {
    const platformDir = join(root, 'packages', 'linux-x64-gnu')
    expect(existsSync(join(platformDir, 'libonnxruntime.so.1')), 'run `npm run build` first').toBe(true)
    const work = mkdtempSync(join(tmpdir(), 'oxinfer-consumer-'))
    const main = pack(root, work)
    const platform = pack(platformDir, work)
    const app = join(work, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    // A PATH without cargo/rustc shows that nothing is compiled at install.
    const path = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('.cargo')).join(':')
    const env = { ...process.env, PATH: path, OXINFER_ORT_DYLIB: '', ORT_DYLIB_PATH: '' }
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--offline', main, platform], { cwd: app, env, encoding: 'utf8' })
    expect(readdirSync(join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort()).toEqual(['oxinfer', 'oxinfer-linux-x64-gnu'])
    copyFileSync(fixture('tiny_mlp.onnx'), join(app, 'model.onnx'))
    writeFileSync(
      join(app, 'main.js'),
      `import { Session, Tensor, versions } from 'oxinfer'
      import { readFileSync } from 'node:fs'
      const s = await Session.create('model.onnx')
      const { y } = await s.run({ x: new Tensor('float32', new Float32Array(16).fill(1), [1, 16]) })
      await s.dispose()
      const lib = readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.includes('libonnxruntime'))
      console.log(JSON.stringify({ v: versions(), dims: y.dims, lib: lib.slice(lib.indexOf('/')) }))`,
    )
    const out = JSON.parse(execFileSync(process.execPath, ['main.js'], { cwd: app, env, encoding: 'utf8' }).trim())
    expect(out.dims).toEqual([1, 2])
    expect(out.v.onnxruntime).toMatch(/^1\./)
    expect(out.lib).toBe(join(app, 'node_modules', 'oxinfer-linux-x64-gnu', 'libonnxruntime.so.1'))
  })
})
