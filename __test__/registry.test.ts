// Issue #11: oxinfer installs from a real npm registry as a user gets it.
// A local verdaccio (no uplinks: nothing leaves this machine) receives the
// tarballs of `npm run pack:dist` by `npm publish`; then, in a fresh folder
// with no Rust on PATH, `npm install oxinfer` alone must pull the platform
// package as an optional dependency and run no install script, the README's
// Quick start must run as written from ESM and from CommonJS, and without
// the platform package `require('oxinfer')` must say what to install.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { fixture, require, root } from './helpers'
import { cargoFreeEnv, installedNames, npm, onPath, packAll, runtimeDependencies, type Tarballs } from './install-helpers'

const TIMEOUT = 240_000
const PLATFORM = 'oxinfer-linux-x64-gnu'

/**
 * The code blocks of README.md's `## Quick start` section, by file name. The
 * section holds exactly two fenced blocks, opened by ```js file=quickstart.mjs
 * and ```js file=quickstart.cjs, which load the placeholder 'model.onnx'
 * (input `x` float32 [batch, 16], output `y`).
 */
function quickStart(readme: string): Record<string, string> {
  const section = readme.split(/^## /m).find((s) => /^Quick start\s*\n/.test(s)) ?? ''
  const blocks = [...section.matchAll(/^```([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm)]
  expect(blocks.map((b) => b[1].trim()).sort(), 'README.md: the Quick start blocks').toEqual(['js file=quickstart.cjs', 'js file=quickstart.mjs'])
  return Object.fromEntries(blocks.map((b) => [b[1].trim().slice('js file='.length), b[2]]))
}

/** A port free on the loopback interface right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once `child` has exited, or after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

const work = mkdtempSync(join(tmpdir(), 'oxinfer-registry-'))
const log = join(work, 'verdaccio.log')
let verdaccio: ChildProcess | undefined
let registry = ''
let env: NodeJS.ProcessEnv = {}
let tarballs: Tarballs
const app = join(work, 'app')
const killVerdaccio = (): void => void verdaccio?.kill('SIGKILL')

/** Starts verdaccio on a free port with storage and users in `work`; its URL once it answers. */
async function startVerdaccio(): Promise<string> {
  const config = join(work, 'verdaccio.yaml')
  writeFileSync(
    config,
    [
      `storage: ${JSON.stringify(join(work, 'storage'))}`,
      `auth: { htpasswd: { file: ${JSON.stringify(join(work, 'htpasswd'))}, max_users: 10 } }`,
      'uplinks: {}',
      "packages: { '**': { access: $all, publish: $authenticated } }",
      'max_body_size: 500mb',
      'web: { enable: false }',
      'log: { type: stdout, format: pretty, level: warn }',
    ].join('\n') + '\n',
  )
  const bin = join(dirname(require.resolve('verdaccio/package.json')), 'bin', 'verdaccio')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const out = openSync(log, 'a')
    verdaccio = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { cwd: work, stdio: ['ignore', out, out] })
    closeSync(out)
    const url = `http://127.0.0.1:${port}/`
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline && verdaccio.exitCode === null) {
      const ok = await fetch(`${url}-/ping`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.ok, () => false)
      if (ok) return url
      await new Promise((r) => setTimeout(r, 250))
    }
    killVerdaccio()
    await exited(verdaccio, 5_000)
    // Someone may have taken the port between freePort() and the listen.
    if (attempt === 3) throw new Error(`verdaccio did not start:\n${readFileSync(log, 'utf8')}`)
  }
}

/** Runs npm with the test's userconfig, cache and registry; its output, after checking it exited 0. */
function npmOk(args: string[], cwd: string): string {
  const r = spawnSync(npm, args, { cwd, env, encoding: 'utf8', timeout: 180_000 })
  const output = `${r.stdout}\n${r.stderr}`
  expect(r.status, `npm ${args.join(' ')}:\n${output}\n${r.error ?? ''}`).toBe(0)
  return output
}

/** Runs `node args` in the app folder; its stdout, after checking it exited 0. */
function nodeOk(args: string[]): string {
  const r = spawnSync(process.execPath, args, { cwd: app, env, encoding: 'utf8', timeout: 60_000 })
  expect(r.status, `node ${args.join(' ')}:\n${r.stdout}\n${r.stderr}\n${r.error ?? ''}`).toBe(0)
  return r.stdout
}

beforeAll(async () => {
  expect(existsSync(join(root, 'packages', 'linux-x64-gnu', 'libonnxruntime.so.1')), 'run `npm run build` first').toBe(true)
  process.once('exit', killVerdaccio)
  tarballs = packAll(work)
  expect(Object.keys(tarballs.platforms)).toContain(PLATFORM)
  registry = await startVerdaccio()

  // A user made here, its token in a userconfig of our own (never ~/.npmrc).
  const res = await fetch(`${registry}-/user/org.couchdb.user:oxinfer-test`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'oxinfer-test', password: 'oxinfer-test-password' }),
  })
  const { token } = (await res.json()) as { token?: string }
  expect(res.status, 'verdaccio: adding a user').toBe(201)
  const npmrc = join(work, 'npmrc')
  const host = registry.replace(/^http:/, '')
  writeFileSync(npmrc, [`registry=${registry}`, `${host}:_authToken=${token}`, 'audit=false', 'fund=false', 'update-notifier=false', ''].join('\n'))
  env = cargoFreeEnv({ npm_config_userconfig: npmrc, npm_config_cache: join(work, 'npm-cache'), npm_config_registry: registry })

  // The registry has no uplinks: the runtime dependencies (commander and
  // cli-progress for the CLI, and theirs, as package-lock.json resolves
  // them) are packed from node_modules and published first.
  for (const dir of runtimeDependencies(root)) {
    const tgz = execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', work, join(root, dir)], { cwd: work, encoding: 'utf8', env }).trim().split('\n').pop()!
    npmOk(['publish', join(work, tgz), '--registry', registry, '--tag', 'latest'], work)
  }
  // The platform package first, as a release publishes it.
  for (const tgz of [tarballs.platforms[PLATFORM], tarballs.main]) npmOk(['publish', tgz, '--registry', registry], work)
}, TIMEOUT)

afterAll(async () => {
  if (verdaccio) {
    verdaccio.kill('SIGTERM')
    await exited(verdaccio, 5_000)
    killVerdaccio()
  }
  process.off('exit', killVerdaccio)
  rmSync(work, { recursive: true, force: true })
}, TIMEOUT)

describe('install from a registry (verdaccio)', () => {
  it('npm install oxinfer pulls the platform package, with no Rust and no install scripts', () => {
    const packument = spawnSync(npm, ['view', 'oxinfer', 'optionalDependencies', '--json', '--registry', registry], { env, encoding: 'utf8' })
    expect(packument.status, packument.stderr).toBe(0)
    expect(JSON.parse(packument.stdout)).toEqual({ [PLATFORM]: tarballs.manifest.version })
    expect(onPath('cargo', env.PATH), 'cargo on the PATH of the install').toBe(false)
    mkdirSync(app)
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'registry-consumer', version: '1.0.0', private: true }))
    const output = npmOk(['install', 'oxinfer', '--registry', registry], app)
    expect(output).not.toMatch(/install-scripts|prepare/)
    expect(readdirSync(join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort()).toEqual(installedNames(root, PLATFORM))
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', PLATFORM, 'package.json'), 'utf8'))
    expect(installed.version).toBe(tarballs.manifest.version)
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'))
    expect(lock.packages[`node_modules/${PLATFORM}`]).toMatchObject({ optional: true, resolved: expect.stringContaining(registry) })
  }, TIMEOUT)

  it("runs the README's Quick start from ESM and from CommonJS", () => {
    expect(existsSync(join(app, 'node_modules', 'oxinfer')), 'the install test ran first').toBe(true)
    copyFileSync(fixture('tiny_mlp.onnx'), join(app, 'model.onnx'))
    for (const [file, code] of Object.entries(quickStart(readFileSync(join(root, 'README.md'), 'utf8')))) {
      writeFileSync(join(app, file), code)
      const out = nodeOk([file])
      // The output `y` of tiny_mlp for one row: dims [1, 2], as util.inspect or JSON prints them.
      expect(out, `${file} printed`).toMatch(/\[\s*1,\s*2\s*\]/)
    }
  }, TIMEOUT)

  it('without its platform package, require("oxinfer") names the package to install', () => {
    expect(existsSync(join(app, 'node_modules', PLATFORM)), 'the install test ran first').toBe(true)
    rmSync(join(app, 'node_modules', PLATFORM), { recursive: true })
    const out = nodeOk(['-e', "try { require('oxinfer'); console.log('{}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }"])
    const err = JSON.parse(out.trim().split('\n').pop()!)
    const v = tarballs.manifest.version
    expect(err.code, err.message).toBe('ERR_UNSUPPORTED')
    expect(err.message).toMatch(new RegExp(`needs the package ${PLATFORM}@${v}.*npm install ${PLATFORM}@${v}`, 's'))
  }, TIMEOUT)
})
