// The torch backend's wiring on the JS side: which models are TorchScript,
// where the plugin (@oxinfer/torch) and libtorch are, and the error that says
// how to install what is missing. The plugin itself loads natively, once.
import { existsSync } from 'node:fs'
import { extname } from 'node:path'

import { OxinferError } from './errors'

/** @internal What the native session needs to load the plugin. */
export interface TorchPlugin {
  path: string
  preload: string[]
  engineDir: string
}

/** File extensions read as TorchScript archives. */
const TORCH_EXTENSIONS = new Set(['.pt', '.pth', '.pts', '.torchscript'])

let configuredLibtorch: string | undefined
let found: { path: string; lib: string } | undefined
/** Whether a session has been given the plugin (libtorch is then in the process for good). */
let handedOut = false

/** @internal Sets `configure({ libtorch })`; refused once libtorch is loaded (two builds in one process would clash). */
export function setLibtorch(dir: string): void {
  if (handedOut && dir !== configuredLibtorch && found && !found.lib.startsWith(dir)) {
    throw new OxinferError('ERR_INVALID_ARGUMENT', `configure: libtorch is already loaded from '${found.lib}'; it cannot be switched to '${dir}' in this process`)
  }
  configuredLibtorch = dir
  if (!handedOut) found = undefined
}

/** @internal The backend a model is for when none is given: a TorchScript extension, or a zip archive's bytes. */
export function detectBackend(model: string | Uint8Array): 'onnx' | 'torch' {
  if (typeof model === 'string') return TORCH_EXTENSIONS.has(extname(model).toLowerCase()) ? 'torch' : 'onnx'
  // TorchScript archives are zip files ("PK\x03\x04"); ONNX is protobuf, which never starts so.
  return model.length >= 4 && model[0] === 0x50 && model[1] === 0x4b && model[2] === 0x03 && model[3] === 0x04 ? 'torch' : 'onnx'
}

const HOW = 'Install it with `npm install @oxinfer/torch` and libtorch 2.11 with `npx oxinfer-torch-install` (or set OXINFER_LIBTORCH to a libtorch 2.11 folder)'

interface TorchPackage {
  pluginPath(): string | undefined
  findLibtorch(explicit?: string): { dir?: string; tried: string[] }
}

function load(): TorchPackage {
  try {
    return require('@oxinfer/torch') as TorchPackage
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e
    throw new OxinferError('ERR_UNSUPPORTED', `TorchScript models need the torch backend, @oxinfer/torch, which is not installed. ${HOW}`)
  }
}

/** @internal The plugin for a server (which loads TorchScript models only if its repository has some), or why there is none. */
export function torchForServer(): { torch?: TorchPlugin; torchMissing?: string } {
  try {
    return { torch: torchPlugin('cpu') }
  } catch (e) {
    if (e instanceof OxinferError) return { torchMissing: e.message }
    throw e
  }
}

/**
 * @internal The plugin and libtorch, found once; throws ERR_UNSUPPORTED
 * saying what is missing. A CUDA device also preloads libtorch's CUDA
 * library, before the plugin touches libtorch (see crates/oxinfer-torch/src/device.rs).
 */
export function torchPlugin(device: string): TorchPlugin {
  const base = (found ??= locate())
  handedOut = true
  const preload = [`${base.lib}/libc10.so`, `${base.lib}/libtorch_cpu.so`]
  if (device !== 'cpu' && existsSync(`${base.lib}/libtorch_cuda.so`)) preload.push(`${base.lib}/libtorch_cuda.so`)
  return { path: base.path, preload, engineDir: base.lib }
}

function locate(): { path: string; lib: string } {
  const pkg = load()
  const path = process.env.OXINFER_TORCH_PLUGIN || pkg.pluginPath()
  if (!path) {
    throw new OxinferError('ERR_UNSUPPORTED', `@oxinfer/torch has no plugin library for ${process.platform}-${process.arch}`)
  }
  const { dir, tried } = pkg.findLibtorch(configuredLibtorch)
  if (!dir) throw new OxinferError('ERR_UNSUPPORTED', `the torch backend needs libtorch 2.11 and found none; tried: ${tried.join('; ')}. ${HOW}`)
  return { path, lib: `${dir}/lib` }
}
