#!/usr/bin/env node
// The Python clients the tests drive (tritonclient 2.73), in a virtual
// environment cached outside the clone under ~/.cache/oxinfer, keyed by the
// hash of scripts/requirements-clients.txt, so that reruns cost nothing.
// Prints the environment's python path. Usage: node scripts/python-clients.mjs
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const requirements = join(here, 'requirements-clients.txt')

/** The cached environment's python, made (once) if missing. Throws when it cannot be installed. */
export function pythonClients() {
  const hash = createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 12)
  const base = process.env.OXINFER_CACHE ?? join(homedir(), '.cache', 'oxinfer')
  const dir = join(base, `py-clients-${hash}`)
  const python = join(dir, 'bin', 'python')
  if (existsSync(join(dir, '.complete'))) return python
  mkdirSync(base, { recursive: true })
  // An interrupted install has no .complete marker: start it again.
  rmSync(dir, { recursive: true, force: true })
  const py = process.env.PYTHON ?? 'python3'
  execFileSync(py, ['-m', 'venv', dir], { stdio: 'inherit' })
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements], { stdio: 'inherit' })
  execFileSync(python, ['-c', 'import tritonclient.http, numpy'], { stdio: 'inherit' })
  writeFileSync(join(dir, '.complete'), '')
  return python
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${pythonClients()}\n`)
