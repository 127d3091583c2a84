#!/usr/bin/env node
// libtorch 2.11 for the torch backend, from PyPI, cached outside the clone
// under ~/.cache/oxinfer, so that reruns cost nothing.
//   node scripts/libtorch.mjs            the slim libtorch that @oxinfer/torch's
//                                        installer makes (packages/torch/libtorch.js);
//                                        prints its folder (holding lib/ and include/)
//   node scripts/libtorch.mjs --python   a virtual environment with the full
//                                        PyTorch build (scripts/requirements-torch.txt),
//                                        for the fixtures and the benchmark's peer;
//                                        prints its python
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const { install } = createRequire(import.meta.url)('../packages/torch/libtorch.js')

/** The folder holding libtorch's lib/ and include/ (the wheel's torch/), installed once. */
export function libtorch() {
  return install({ quiet: true })
}

/** A virtual environment with the full PyTorch build (fixtures, the benchmark's peer). */
export function pythonTorch() {
  const hash = createHash('sha256').update(readFileSync(join(here, 'requirements-torch.txt'))).digest('hex').slice(0, 12)
  const base = process.env.OXINFER_CACHE ?? join(homedir(), '.cache', 'oxinfer')
  const dir = join(base, `py-torch-${hash}`)
  const python = join(dir, 'bin', 'python')
  if (existsSync(join(dir, '.complete'))) return python
  mkdirSync(base, { recursive: true })
  rmSync(dir, { recursive: true, force: true })
  execFileSync(process.env.PYTHON ?? 'python3', ['-m', 'venv', dir], { stdio: 'inherit' })
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', join(here, 'requirements-torch.txt')], { stdio: 'inherit' })
  execFileSync(python, ['-c', 'import torch'], { stdio: 'inherit' })
  writeFileSync(join(dir, '.complete'), '')
  return python
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${process.argv.includes('--python') ? pythonTorch() : libtorch()}\n`)
}
