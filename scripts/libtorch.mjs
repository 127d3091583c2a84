#!/usr/bin/env node
// libtorch 2.11 for the torch backend, from PyPI, cached outside the clone
// under ~/.cache/oxinfer and keyed by the hash of its requirements file, so
// that reruns cost nothing.
//   node scripts/libtorch.mjs            the slim libtorch (torch wheel without
//                                        dependencies + CUDA runtime wheels);
//                                        prints its folder (holding lib/ and include/)
//   node scripts/libtorch.mjs --python   a virtual environment with the full
//                                        PyTorch build; prints its python
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const cache = () => process.env.OXINFER_CACHE ?? join(homedir(), '.cache', 'oxinfer')
const keyed = (file) => createHash('sha256').update(readFileSync(join(here, file))).digest('hex').slice(0, 12)
const pip = ['--quiet', '--disable-pip-version-check', '--no-input']

/** The folder holding libtorch's lib/ and include/ (the wheel's torch/), installed once. */
export function libtorch() {
  const dir = join(cache(), `libtorch-2.11.0-${keyed('requirements-libtorch.txt')}`)
  const torch = join(dir, 'torch')
  if (existsSync(join(dir, '.complete'))) return torch
  mkdirSync(cache(), { recursive: true })
  // An interrupted install has no .complete marker: start it again.
  rmSync(dir, { recursive: true, force: true })
  const py = process.env.PYTHON ?? 'python3'
  execFileSync(py, ['-m', 'pip', 'install', ...pip, '--no-deps', '--only-binary=:all:', '--target', dir, '-r', join(here, 'requirements-libtorch.txt')], { stdio: 'inherit' })
  if (!existsSync(join(torch, 'lib', 'libtorch_cpu.so'))) throw new Error(`no libtorch_cpu.so under ${torch}`)
  writeFileSync(join(dir, '.complete'), '')
  return torch
}

/** A virtual environment with the full PyTorch build (fixtures, the benchmark's peer). */
export function pythonTorch() {
  const dir = join(cache(), `py-torch-${keyed('requirements-torch.txt')}`)
  const python = join(dir, 'bin', 'python')
  if (existsSync(join(dir, '.complete'))) return python
  mkdirSync(cache(), { recursive: true })
  rmSync(dir, { recursive: true, force: true })
  execFileSync(process.env.PYTHON ?? 'python3', ['-m', 'venv', dir], { stdio: 'inherit' })
  execFileSync(python, ['-m', 'pip', 'install', ...pip, '-r', join(here, 'requirements-torch.txt')], { stdio: 'inherit' })
  execFileSync(python, ['-c', 'import torch'], { stdio: 'inherit' })
  writeFileSync(join(dir, '.complete'), '')
  return python
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${process.argv.includes('--python') ? pythonTorch() : libtorch()}\n`)
}
