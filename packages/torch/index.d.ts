/** The libtorch version the plugin was built against (a libtorch of another minor version is refused). */
export declare const LIBTORCH_VERSION: string
/** The plugin library for this platform, or undefined when there is none. */
export declare function pluginPath(): string | undefined
/** The libtorch folder (holding lib/) to use, or why none was found. */
export declare function findLibtorch(explicit?: string): { dir?: string; tried: string[] }
/** Installs libtorch from PyPI into the cache (once) and returns its folder. */
export declare function install(options?: { python?: string; quiet?: boolean }): string
