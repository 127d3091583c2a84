// Errors: the one error class oxinfer raises or rejects with, its stable
// codes, and the decoding of errors that the addon encodes
// (crates/oxinfer-node/src/errors.rs).

import { native, type ErrorCodeName } from './native'

/**
 * Stable error codes, as the core defines them (one per variant of its error
 * enum; see crates/oxinfer-node/src/options.rs). See the README for when each
 * one is used.
 */
export type ErrorCode = ErrorCodeName

const CODES: ReadonlySet<string> = new Set(Object.values(native.ErrorCode))

export interface OxinferErrorOptions {
  /** The model input the error is about. */
  input?: string
  /** The record (row index within its batch) an input error is about. */
  row?: number
  /** The record field an input error is about. */
  field?: string
  /** The pipeline stage a spec error is about. */
  stage?: string
  /** The file an ERR_FILE error is about, or the spec file a spec error was read from. */
  path?: string
  /** The JSON path, within the spec, of the value a spec error is about (`preprocess[2].fields[1]`). */
  jsonPath?: string
  /** The 1-based line of that value in the spec file (specs read from a file). */
  line?: number
  /** The 1-based column of that value in the spec file. */
  column?: number
  cause?: unknown
}

/** Every error oxinfer raises or rejects with. One class for ESM and CJS. */
export class OxinferError extends Error {
  readonly code: ErrorCode
  /** The model input the error is about, where one applies. */
  readonly input?: string
  /** The record (row within its batch) an input error is about. */
  readonly row?: number
  /** The record field an input error is about. */
  readonly field?: string
  /** The pipeline stage a spec error is about. */
  readonly stage?: string
  /** ERR_FILE: the file that could not be opened; spec errors: the spec file. */
  readonly path?: string
  /** The JSON path, within the spec, of the value a spec error is about (`preprocess[2].fields[1]`). */
  readonly jsonPath?: string
  /** The 1-based line of that value in its spec file (specs read from a file). */
  readonly line?: number
  /** The 1-based column of that value in its spec file. */
  readonly column?: number

  constructor(code: ErrorCode, message: string, options: OxinferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'OxinferError'
    this.code = code
    if (options.input !== undefined) this.input = options.input
    if (options.row !== undefined) this.row = options.row
    if (options.field !== undefined) this.field = options.field
    if (options.stage !== undefined) this.stage = options.stage
    if (options.path !== undefined) this.path = options.path
    if (options.jsonPath !== undefined) this.jsonPath = options.jsonPath
    if (options.line !== undefined) this.line = options.line
    if (options.column !== undefined) this.column = options.column
  }
}

const SEP = '\u001f'

/** Turns an error from the addon (encoded `CODE␟input␟message`) into an OxinferError. */
export function fromNative(e: unknown): OxinferError {
  if (e instanceof OxinferError) return e
  const msg = typeof e === 'string' ? e : e instanceof Error ? e.message : String(e)
  const parts = msg.split(SEP)
  if (parts.length >= 3 && CODES.has(parts[0])) {
    let details: OxinferErrorOptions = {}
    try {
      details = JSON.parse(parts[1]) as OxinferErrorOptions
    } catch {
      // Keep the code and message even if the details are unreadable.
    }
    return new OxinferError(parts[0] as ErrorCode, parts.slice(2).join(SEP), details)
  }
  return new OxinferError('ERR_BACKEND', msg, { cause: e })
}

/** An ERR_INVALID_ARGUMENT error. */
export function invalidArg(message: string): OxinferError {
  return new OxinferError('ERR_INVALID_ARGUMENT', message)
}
