// libtorch for the TorchScript backend: the documented search for a libtorch
// 2.11 folder, and an installer that takes it from PyPI (the torch wheel
// without its dependencies, plus the two CUDA runtime wheels libtorch_cpu.so
// needs to load) into a cache outside any project, keyed by the pins.
'use strict'
const { execFileSync } = require('node:child_process')
const { createHash } = require('node:crypto')
const { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs')
const { homedir } = require('node:os')
const { join, resolve } = require('node:path')

const LIBTORCH_VERSION = '2.11.0'
/** What `install` puts in the cache (exact versions, as PyPI serves them for linux x86_64). */
const REQUIREMENTS = ['torch==2.11.0', 'nvidia-cuda-runtime==13.0.96', 'nvidia-cuda-cupti==13.0.85']

function cacheRoot() {
  return process.env.OXINFER_CACHE || join(homedir(), '.cache', 'oxinfer')
}

/** The folder `install` uses. */
function installDir() {
  const hash = createHash('sha256').update(REQUIREMENTS.join('\n')).digest('hex').slice(0, 12)
  return join(cacheRoot(), `libtorch-${LIBTORCH_VERSION}-${hash}`)
}

/** Why `dir` is not a usable libtorch 2.11 folder, or undefined when it is. */
function problem(dir) {
  if (!existsSync(join(dir, 'lib', 'libtorch_cpu.so'))) return `${dir} (no lib/libtorch_cpu.so)`
  // A PyTorch install has version.py, a libtorch archive build-version.
  let version
  try {
    version = /__version__\s*=\s*'([^']+)'/.exec(readFileSync(join(dir, 'version.py'), 'utf8'))?.[1]
  } catch {
    try {
      version = readFileSync(join(dir, 'build-version'), 'utf8').trim()
    } catch {}
  }
  const want = LIBTORCH_VERSION.split('.').slice(0, 2).join('.')
  if (version && !version.startsWith(`${want}.`)) return `${dir} (libtorch ${version}; the plugin needs ${want}.x)`
  return undefined
}

let pythonLookup
/** The torch folder of the python on PATH's PyTorch, if it has one (asked once per process). */
function pythonTorch() {
  if (pythonLookup !== undefined) return pythonLookup || undefined
  pythonLookup = ''
  try {
    const out = execFileSync(process.env.PYTHON || 'python3', ['-c', "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
    pythonLookup = out.trim()
    return pythonLookup || undefined
  } catch {
    return undefined
  }
}

/**
 * The libtorch folder to use: `explicit` (configure({ libtorch })), then
 * OXINFER_LIBTORCH, the folder `install` fills, LIBTORCH (tch's build
 * variable) and the PyTorch of the python on PATH. `explicit` and
 * OXINFER_LIBTORCH decide when set (a wrong folder is refused with the
 * reason); the others are skipped when missing or of another version.
 */
function findLibtorch(explicit) {
  const tried = []
  for (const [what, dir] of [['configure({ libtorch })', explicit], ['OXINFER_LIBTORCH', process.env.OXINFER_LIBTORCH]]) {
    if (!dir) continue
    const why = problem(resolve(dir))
    if (why) return { tried: [...tried, `${what}: ${why}`] }
    return { dir: resolve(dir), tried }
  }
  const cached = join(installDir(), 'torch')
  if (existsSync(join(installDir(), '.complete')) && !problem(cached)) return { dir: cached, tried }
  tried.push(`${cached} (not installed)`)
  if (process.env.LIBTORCH) {
    const why = problem(resolve(process.env.LIBTORCH))
    if (!why) return { dir: resolve(process.env.LIBTORCH), tried }
    tried.push(`LIBTORCH: ${why}`)
  }
  const py = pythonTorch()
  if (py && !problem(py)) return { dir: py, tried }
  tried.push(py ? `python's torch: ${problem(py)}` : "python's torch (none)")
  return { tried }
}

/** Installs libtorch from PyPI into the cache (once) and returns its folder. */
function install({ python = process.env.PYTHON || 'python3', quiet = false } = {}) {
  const dir = installDir()
  const torch = join(dir, 'torch')
  if (existsSync(join(dir, '.complete'))) return torch
  mkdirSync(cacheRoot(), { recursive: true })
  // An interrupted install has no .complete marker: start again.
  rmSync(dir, { recursive: true, force: true })
  const args = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--no-deps', '--only-binary=:all:', '--target', dir, ...REQUIREMENTS]
  if (quiet) args.splice(3, 0, '--quiet')
  execFileSync(python, args, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit' })
  const why = problem(torch)
  if (why) throw new Error(`libtorch did not install as expected: ${why}`)
  writeFileSync(join(dir, '.complete'), '')
  return torch
}

module.exports = { findLibtorch, install, installDir, LIBTORCH_VERSION, REQUIREMENTS }
