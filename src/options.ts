// Argument checks shared by the public classes: option objects and their
// unknown keys, integer options, and how a bad value is named in a message.
import { invalidArg } from './errors'
import type { NativeEnum } from './native'

export function checkKeys(what: string, options: object, allowed: readonly string[]): void {
  // for-in rather than Object.keys: no array per call on the hot path.
  for (const key in options) {
    if (Object.hasOwn(options, key) && !allowed.includes(key)) {
      throw invalidArg(`unknown ${what} option '${key}'; allowed: ${allowed.join(', ')}`)
    }
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function intOption(options: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const v = options[key]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArg(`${key} must be an integer from ${min} to ${max}, got ${showValue(v)}`)
  }
  return v
}

/**
 * A bad option value as a message shows it: its JSON (cut at 40 characters),
 * or its type where JSON has none. Never throws, unlike JSON.stringify on a
 * BigInt, a cycle or a throwing toJSON.
 */
export function showValue(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  let json: string | undefined
  try {
    json = JSON.stringify(v)
  } catch {
    json = undefined
  }
  if (json === undefined) return v === null ? 'null' : typeof v
  return json.length > 40 ? `${json.slice(0, 40)}…` : json
}

export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`
  if (Array.isArray(v)) return `an array of ${v.length}`
  return v === null ? 'null' : typeof v
}

/**
 * `value` (or `fallback` when it is undefined) checked against one of the
 * addon's string enums, which are the only list of the allowed names.
 */
export function oneOf<V extends string>(what: string, value: unknown, table: NativeEnum<V>, fallback?: V): V {
  const v = value === undefined ? fallback : value
  const allowed = Object.values(table)
  if (!allowed.includes(v as V)) {
    throw invalidArg(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${showValue(v)}`)
  }
  return v as V
}
