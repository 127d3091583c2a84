// The ONNX Runtime library: which one is loaded (configure, the documented
// search order), its log level and versions, and the count of running file jobs.
import { existsSync } from 'node:fs'
import { dirname, join, resolve as resolvePath } from 'node:path'

import { fromNative, invalidArg, OxinferError } from './errors'
import { native, type NameOf } from './native'
import { checkKeys, isPlainObject, oneOf } from './options'
import { currentPlatform } from './platform'
import { setLibtorch } from './torch'

/** Options of {@link configure}. */
export interface ConfigureOptions {
  /** Absolute path of the ONNX Runtime shared library to load. Default: found automatically (see README). */
  ortLibrary?: string
  /**
   * The libtorch 2.11 folder (holding lib/) for TorchScript models, ahead of
   * OXINFER_LIBTORCH, LIBTORCH, the folder `npx oxinfer-torch-install` fills,
   * and the PyTorch of the python on PATH. Set it before the first TorchScript model loads.
   */
  libtorch?: string
  /** ONNX Runtime's log level. Default: 'fatal', so that ONNX Runtime prints nothing on stderr (its errors reach you as OxinferErrors). */
  logLevel?: NameOf<'LogLevel'>
}

let configuredLibrary: string | undefined
let resolveFailure: OxinferError | undefined


function packageDir(name: string): string | undefined {
  try {
    return dirname(require.resolve(`${name}/package.json`))
  } catch {
    return undefined
  }
}

/** Picks the library to load, in the documented order. */
export function resolveLibrary(): string {
  if (resolveFailure) throw resolveFailure
  const loaded = native.ortLoadedPath()
  if (loaded) return loaded
  const explicit: Array<[string, string | undefined]> = [
    ['configure({ ortLibrary })', configuredLibrary],
    ['OXINFER_ORT_DYLIB', process.env.OXINFER_ORT_DYLIB || undefined],
    ['ORT_DYLIB_PATH', process.env.ORT_DYLIB_PATH || undefined],
  ]
  for (const [, path] of explicit) {
    if (path) return resolvePath(path)
  }
  const mapped = native.ortAlreadyMapped()
  if (mapped) return mapped
  const { platform } = currentPlatform()
  const file = platform?.ortLibrary ?? 'libonnxruntime.so.1'
  const tried: string[] = []
  const candidates: string[] = []
  if (platform) {
    const dir = packageDir(platform.package)
    if (dir) candidates.push(join(dir, file))
    else tried.push(`${platform.package} (not installed)`)
  }
  const ortNode = packageDir('onnxruntime-node')
  if (ortNode) candidates.push(join(ortNode, 'bin', 'napi-v6', platform?.ortDir ?? `${process.platform}/${process.arch}`, file))
  else tried.push('onnxruntime-node (not installed)')
  for (const c of candidates) {
    if (existsSync(c)) return c
    tried.push(c)
  }
  resolveFailure = new OxinferError(
    'ERR_UNSUPPORTED',
    `cannot find the ONNX Runtime library; tried: ${tried.join('; ')}. Set OXINFER_ORT_DYLIB or call configure({ ortLibrary }).`,
  )
  throw resolveFailure
}

/**
 * Configures the process-wide ONNX Runtime library. Optional; call it before the
 * first session. Calling it later with a different library throws ERR_INVALID_ARGUMENT.
 */
export function configure(options: ConfigureOptions = {}): void {
  if (!isPlainObject(options)) throw invalidArg('configure: options must be an object')
  checkKeys('configure', options, ['ortLibrary', 'logLevel', 'libtorch'])
  const { ortLibrary, logLevel, libtorch } = options
  if (libtorch !== undefined) {
    if (typeof libtorch !== 'string' || libtorch === '') throw invalidArg('configure: libtorch must be a non-empty folder path')
    setLibtorch(resolvePath(libtorch))
  }
  if (ortLibrary !== undefined) {
    if (typeof ortLibrary !== 'string' || ortLibrary === '') throw invalidArg('configure: ortLibrary must be a non-empty path string')
    const abs = resolvePath(ortLibrary)
    const loaded = native.ortLoadedPath()
    if (loaded && loaded !== abs) {
      throw invalidArg(`configure: ONNX Runtime is already loaded from '${loaded}'; it cannot be switched to '${abs}' in this process`)
    }
    configuredLibrary = abs
  }
  if (logLevel !== undefined) {
    const level = oneOf('configure: logLevel', logLevel, native.LogLevel)
    try {
      native.ortSetLogLevel(level)
    } catch (e) {
      throw fromNative(e)
    }
  }
}

/** Batch jobs over files whose native driver is still running (0 once every job has settled). */
export function activeJobs(): number {
  return native.activeJobs()
}

/**
 * Versions of oxinfer, the loaded ONNX Runtime, and the Node-API version the
 * runtime offers the addon. Loads the library if needed (synchronously).
 */
export function versions(): { oxinfer: string; onnxruntime: string; napi: string } {
  const lib = resolveLibrary()
  try {
    const v = native.ortVersions(lib)
    return { oxinfer: v.oxinfer, onnxruntime: v.onnxruntime, napi: String(process.versions.napi) }
  } catch (e) {
    throw fromNative(e)
  }
}
