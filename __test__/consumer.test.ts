import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { fixture, root } from './helpers'
import { cargoFreeEnv, npm, onPath, packAll, installedNames } from './install-helpers'

const work = mkdtempSync(join(tmpdir(), 'oxinfer-consumer-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('consumer install', () => {
  it('packs the main and platform packages, installs them elsewhere and runs a model without Rust or onnxruntime-node', () => {
    const platformDir = join(root, 'packages', 'linux-x64-gnu')
    expect(existsSync(join(platformDir, 'libonnxruntime.so.1')), 'run `npm run build` first').toBe(true)
    const { main, platforms, manifest } = packAll(work)
    const platform = platforms['oxinfer-linux-x64-gnu']
    // As published: no build on install, and the platform package as an optional dependency.
    expect(manifest.scripts).toBeUndefined()
    expect(manifest.devDependencies).toBeUndefined()
    expect(manifest.allowScripts).toBeUndefined()
    expect(manifest.optionalDependencies).toEqual({ 'oxinfer-linux-x64-gnu': manifest.version })
    const app = join(work, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    // A PATH without cargo/rustc shows that nothing is compiled at install.
    const env = cargoFreeEnv()
    expect(onPath('cargo', env.PATH)).toBe(false)
    const install = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--offline', main, platform], { cwd: app, env, encoding: 'utf8' })
    expect(install.status, install.stderr).toBe(0)
    expect(install.stdout + install.stderr).not.toMatch(/install-scripts|prepare/)
    expect(readdirSync(join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort()).toEqual(installedNames(root, 'oxinfer-linux-x64-gnu'))
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

    // Without its platform package, loading says which package to install.
    rmSync(join(app, 'node_modules', 'oxinfer-linux-x64-gnu'), { recursive: true })
    const missing = spawnSync(process.execPath, ['-e', "try { require('oxinfer') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }"], { cwd: app, env, encoding: 'utf8' })
    const err = JSON.parse(missing.stdout.trim())
    expect(err.code).toBe('ERR_UNSUPPORTED')
    expect(err.message).toMatch(new RegExp(`needs the package oxinfer-linux-x64-gnu@${manifest.version}.*npm install oxinfer-linux-x64-gnu@${manifest.version}`))
  })
})
