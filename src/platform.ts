// The platforms oxinfer publishes a native package for: one table, read by
// the loader (which package to name when the addon is missing), the search
// for ONNX Runtime, and the build scripts that stage and pack the packages.

export interface Platform {
  /** The npm package with the addon and ONNX Runtime: `oxinfer-<dir>`. */
  readonly package: string
  /** Its folder under packages/ (napi-rs's platform suffix). */
  readonly dir: string
  /** ONNX Runtime's library file in that package. */
  readonly ortLibrary: string
  /** Where onnxruntime-node keeps that library, under bin/napi-v6/. */
  readonly ortDir: string
}

function platform(dir: string, ortDir: string, ortLibrary: string): Platform {
  return Object.freeze({ package: `oxinfer-${dir}`, dir, ortDir, ortLibrary })
}

/** By `${process.platform}-${process.arch}`. */
export const PLATFORMS: Readonly<Record<string, Platform>> = Object.freeze({
  'linux-x64': platform('linux-x64-gnu', 'linux/x64', 'libonnxruntime.so.1'),
  'linux-arm64': platform('linux-arm64-gnu', 'linux/arm64', 'libonnxruntime.so.1'),
  'darwin-arm64': platform('darwin-arm64', 'darwin/arm64', 'libonnxruntime.1.30.0.dylib'),
  'win32-x64': platform('win32-x64-msvc', 'win32/x64', 'onnxruntime.dll'),
})

/** This process's platform key, and its package if oxinfer publishes one. */
export function currentPlatform(): { key: string; platform: Platform | undefined; musl: boolean } {
  const key = `${process.platform}-${process.arch}`
  // The published Linux packages are built against glibc.
  const report = process.platform === 'linux' ? (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined) : undefined
  const musl = process.platform === 'linux' && !report?.header?.glibcVersionRuntime
  return { key, platform: musl ? undefined : PLATFORMS[key], musl }
}
