// Sharded batch jobs: what a shard option looks like, and mergeShards, which
// joins the parts that `runJob(…, { output, shard })` shards wrote. The rules
// (byte ranges, part names, manifests, the exactly-once check) live in
// crates/oxinfer-core/src/job/shard.rs.
import { resolve } from 'node:path'

import { fromNative, invalidArg } from './errors'
import { native } from './native'
import { intOption, isPlainObject, showValue } from './options'

/** One shard of a job's input: `index` (0-based, as a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`) of `count`. */
export interface ShardOption {
  index: number
  count: number
}

/** Options of {@link mergeShards}. */
export interface MergeShardsOptions {
  /** The shard count. Default: from the manifests present (refused when parts of several counts are there). */
  count?: number
  /** Leave the parts and their manifests in place. Default false: they are removed once the output is written. */
  keep?: boolean
}

/** What {@link mergeShards} wrote. */
export interface MergeReport {
  shards: number
  rows: number
  /** Rows written with an error (jobs run with `errors: 'return'`). */
  errors: number
  output: string
  input: string
}

/**
 * Parses `"i/N"`, or `"N"` with the index from `JOB_COMPLETION_INDEX` (a
 * Kubernetes Indexed Job's pod), into a shard. `env` defaults to process.env.
 */
export function parseShard(text: string, env: Record<string, string | undefined> = process.env): ShardOption {
  const m = /^\s*(?:(\d+)\s*\/\s*)?(\d+)\s*$/.exec(text)
  if (!m) throw invalidArg(`shard must be 'index/count' (0-based index) or 'count' with JOB_COMPLETION_INDEX set, got ${showValue(text)}`)
  let index: number
  if (m[1] !== undefined) index = Number(m[1])
  else {
    const fromEnv = env.JOB_COMPLETION_INDEX
    if (fromEnv === undefined || !/^\d+$/.test(fromEnv)) throw invalidArg(`shard '${text}' takes its index from JOB_COMPLETION_INDEX, which is ${fromEnv === undefined ? 'not set' : showValue(fromEnv)}`)
    index = Number(fromEnv)
  }
  return { index, count: Number(m[2]) }
}

/** @internal A `shard` option's shape, as [index, count] for the native job (which checks index < count). */
export function checkShard(value: unknown, what: string): ShardOption {
  if (!isPlainObject(value) || value.index === undefined || value.count === undefined) throw invalidArg(`${what} must be { index, count }, got ${showValue(value)}`)
  return { index: intOption(value, 'index', 0, 0, 2 ** 31 - 1), count: intOption(value, 'count', 1, 1, 2 ** 31 - 1) }
}

/**
 * Joins the parts of a sharded job's `output` (`<output>.shard-<i>-of-<n>`)
 * into `output`, after checking that the shards' byte spans tile the input,
 * so every row was scored exactly once, and that each part holds the rows its
 * manifest counts. Rows are numbered in the whole input, so the file equals
 * an unsharded run's. Runs off the JS thread.
 */
export async function mergeShards(output: string, options: MergeShardsOptions = {}): Promise<MergeReport> {
  if (typeof output !== 'string' || output === '') throw invalidArg('mergeShards: output must be a file path')
  if (!isPlainObject(options)) throw invalidArg(`mergeShards: options must be an object, got ${showValue(options)}`)
  const count = options.count === undefined ? undefined : intOption(options as Record<string, unknown>, 'count', 1, 1, 2 ** 31 - 1)
  if (options.keep !== undefined && typeof options.keep !== 'boolean') throw invalidArg(`mergeShards: keep must be a boolean, got ${showValue(options.keep)}`)
  try {
    return JSON.parse(await native.mergeShards(resolve(output), count, options.keep ?? false)) as MergeReport
  } catch (e) {
    throw fromNative(e)
  }
}
