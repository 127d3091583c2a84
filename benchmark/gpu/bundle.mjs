#!/usr/bin/env node
// Packs what the GPU check needs from a build made here into
// benchmark/gpu/bundle/ (ignored by git; under 64 MiB, the most a device run
// carries): this machine's Node binary (xz) and the built JS, addon and torch
// plugin (tar.xz). Tracked files (benchmark/, __test__/fixtures/torch) travel
// with the working tree. Run after `npm run build`:
//   node benchmark/gpu/bundle.mjs
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const out = join(here, 'bundle')
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

function jsUnder(dir) {
  const files = []
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) files.push(...jsUnder(p))
    else if (e.name.endsWith('.js') || e.name.endsWith('.mjs')) files.push(p)
  }
  return files
}

const built = ['index.js', 'index.mjs', 'binding.js', 'oxinfer.linux-x64-gnu.node', 'packages/torch/oxinfer-torch.linux-x64-gnu.so', ...jsUnder('src')]
for (const f of built) if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run npm run build first`)
execFileSync('tar', ['-cJf', join(out, 'built.tar.xz'), '-C', root, ...built], { stdio: 'inherit' })
execFileSync('sh', ['-c', `xz -6 -T0 -c "${process.execPath}" > "${join(out, 'node.xz')}"`], { stdio: 'inherit' })
let total = 0
for (const f of readdirSync(out)) total += statSync(join(out, f)).size
console.log(`${relative(root, out)}: ${(total / 2 ** 20).toFixed(1)} MiB`)
if (total > 60 * 2 ** 20) throw new Error('the bundle is over 60 MiB; a device run carries 64 MiB at most')
