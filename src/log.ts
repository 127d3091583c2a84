// Native logs: the server's `tracing` events arrive from Rust as
// pino-compatible JSON lines (level, time, pid, hostname, name, msg and the
// event's fields) and go to a pino logger, or as lines to any stream with
// write() (process.stdout, a file stream, pino's destination). The native
// sink is process-wide, so one logger takes every server's lines.
import { invalidArg } from './errors'
import * as hub from './hub'
import { native } from './native'

/** Levels, as pino names them; 'silent' turns native logs off. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'

/** A pino logger, or anything with pino's level methods (`logger.info(obj, msg)`). */
export interface PinoLike {
  trace(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  level?: string
}

/** A stream of pino JSON lines (each written with its newline). */
export interface LineSink {
  write(line: string): unknown
}

/** Where native logs go. */
export type Logger = PinoLike | LineSink

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent']
const METHOD: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' }

let listener = 0

function isPino(l: object): l is PinoLike {
  const p = l as Record<string, unknown>
  return ['trace', 'debug', 'info', 'warn', 'error'].every((m) => typeof p[m] === 'function')
}

/** Hands one native line to `logger`; a logger that throws loses its line, never the process. */
function deliver(logger: Logger, line: string): void {
  try {
    if (isPino(logger)) {
      const { level, time: _time, pid: _pid, hostname: _host, name: _name, msg, ...fields } = JSON.parse(line) as Record<string, unknown>
      logger[METHOD[level as number] ?? 'info'](fields, typeof msg === 'string' ? msg : undefined)
    } else {
      logger.write(`${line}\n`)
    }
  } catch {
    // A log sink's failure must not fail the server.
  }
}

/**
 * Sends the native side's logs (model loads and failures, server errors,
 * drain, and at 'debug' one access line per request) to `logger` at `level`
 * and above. The level defaults to a pino logger's own level, else 'info'.
 * `null` turns them off. One logger per process: the last call wins.
 */
export function setLogger(logger: Logger | null, level?: LogLevel): void {
  if (level !== undefined && !LEVELS.includes(level)) throw invalidArg(`setLogger: level must be one of ${LEVELS.join(', ')}, got ${String(level)}`)
  if (logger !== null && (typeof logger !== 'object' || (!isPino(logger) && typeof (logger as LineSink).write !== 'function'))) {
    throw invalidArg('setLogger: logger must be a pino logger (info/warn/error/debug/trace methods), a stream with write(), or null')
  }
  if (listener !== 0) hub.cancel(listener)
  listener = 0
  if (logger === null) {
    native.setLogSink(null, 0, 'silent')
    return
  }
  const own = isPino(logger) && typeof logger.level === 'string' && LEVELS.includes(logger.level as LogLevel) ? (logger.level as LogLevel) : undefined
  const id = hub.nextId()
  const onLine = (line: unknown): void => {
    // The listener keeps receiving lines: wait for the next one.
    if (listener === id) hub.register(id, onLine)
    deliver(logger, line as string)
  }
  listener = id
  hub.register(id, onLine)
  native.setLogSink(hub.nativeHub, id, level ?? own ?? 'info')
}
