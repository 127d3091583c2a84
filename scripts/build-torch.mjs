#!/usr/bin/env node
// Builds the torch backend's plugin (crates/oxinfer-torch) against libtorch
// 2.11 from PyPI (installed and cached by scripts/libtorch.mjs) and stages it
// in packages/torch, where @oxinfer/torch (linked as a devDependency) finds it.
//   node scripts/build-torch.mjs          build and stage
//   node scripts/build-torch.mjs test     cargo test the plugin crate
import { execFileSync } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { libtorch } from './libtorch.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const env = { ...process.env, LIBTORCH: libtorch() }
// The plugin has no run path (the host loads libtorch first); its own test binaries find libtorch here.
env.LD_LIBRARY_PATH = [join(env.LIBTORCH, 'lib'), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':')
const cargo = (args) => execFileSync('cargo', args, { cwd: root, env, stdio: 'inherit' })

if (process.argv[2] === 'test') {
  cargo(['test', '--release', '-p', 'oxinfer-torch'])
} else {
  cargo(['build', '--release', '-p', 'oxinfer-torch'])
  const target = process.env.CARGO_TARGET_DIR ?? join(root, 'target')
  copyFileSync(join(target, 'release', 'liboxinfer_torch.so'), join(root, 'packages', 'torch', 'oxinfer-torch.linux-x64-gnu.so'))
}
