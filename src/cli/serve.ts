// `oxinfer serve`: starts the native server, logs as pino-compatible JSON
// lines on stdout, prints curl lines on request, and closes gracefully on
// SIGTERM and SIGINT (stop accepting, finish what is in flight, exit 0).
import { hostname } from 'node:os'

import { readFileSync } from 'node:fs'

import { OxinferError } from '../errors'
import type { LogLevel } from '../log'
import { serve } from '../server'
import { FeatureStore, type FeatureStoreOptions } from '../store'

export interface ServeFlags {
  repository: string
  host: string
  port: number
  poll?: string | boolean
  token?: string
  timeoutMs?: number
  threads?: number
  models?: string
  curl?: boolean
  drainMs?: number
  logLevel?: LogLevel
  featureStore?: string
}

/** Stores opened for the server: held for the process's life, so that reloaded pipelines still find them. */
const held: FeatureStore[] = []

/** Opens the feature stores a JSON file configures (one store, or an array), before any model loads. */
async function openStores(path: string): Promise<FeatureStore[]> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    throw new OxinferError('ERR_FILE', `cannot read the feature store configuration '${path}': ${(e as Error).message}`, { path, cause: e })
  }
  const list = (Array.isArray(parsed) ? parsed : [parsed]) as FeatureStoreOptions[]
  const stores: FeatureStore[] = []
  for (const o of list) stores.push(await FeatureStore.create(o))
  return stores
}

/** One log line in pino's shape (level 30 info, 40 warn, 50 error). */
export function log(level: 30 | 40 | 50, msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ level, time: Date.now(), pid: process.pid, hostname: hostname(), name: 'oxinfer', msg, ...extra })}\n`)
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const poll = flags.poll === undefined ? undefined : flags.poll === true ? true : Number(flags.poll)
  // Pipelines' lookup stages find their stores by name when they compile.
  const stores = flags.featureStore ? await openStores(flags.featureStore) : []
  held.push(...stores)
  if (stores.length > 0) log(30, 'feature stores open', { stores: stores.map((s) => s.name) })
  const server = await serve({
    repository: flags.repository,
    host: flags.host,
    port: flags.port,
    poll,
    token: flags.token ?? process.env.OXINFER_TOKEN,
    timeoutMs: flags.timeoutMs,
    threads: flags.threads,
    load: flags.models?.split(',').map((s) => s.trim()).filter(Boolean),
    drainMs: flags.drainMs,
    // The native side's lines share stdout with this command's own, in the same shape.
    logger: process.stdout,
    logLevel: flags.logLevel ?? 'info',
  })
  // Load failures were logged natively (level 40, "model failed to load").
  const models = server.models()
  const url = server.address!.url
  log(30, 'serving', { url, models: models.map((m) => `${m.name}/${m.version}`) })
  // The token itself is never printed: the lines read it from the environment.
  if (flags.curl) process.stdout.write(curlLines(url, models.map((m) => m.name), flags.token ?? process.env.OXINFER_TOKEN ? '$OXINFER_TOKEN' : undefined))
  let closing = false
  const stop = (signal: string): void => {
    if (closing) return
    closing = true
    log(30, 'closing: finishing requests in flight', { signal })
    server.close().then(
      () => {
        log(30, 'closed')
        process.exit(0)
      },
      (e: unknown) => {
        log(50, 'close failed', { error: String(e) })
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

/** Requests to try against the example repository's models. */
export function curlLines(url: string, models: string[], token?: string): string {
  const auth = token ? ` -H "Authorization: Bearer ${token}"` : ''
  const lines = [`curl -s${auth} ${url}/v2/health/ready -o /dev/null -w '%{http_code}\\n'`, `curl -s${auth} ${url}/v2`]
  const json = ` -H 'Content-Type: application/json'`
  if (models.includes('penguins')) {
    const body = {
      inputs: [
        { name: 'island', datatype: 'BYTES', shape: [2], data: ['Biscoe', 'Dream'] },
        { name: 'bill_length_mm', datatype: 'FP64', shape: [2], data: [45.2, 39.1] },
        { name: 'bill_depth_mm', datatype: 'FP64', shape: [2], data: [14.8, 18.7] },
        { name: 'flipper_length_mm', datatype: 'FP64', shape: [2], data: [212, 181] },
        { name: 'body_mass_g', datatype: 'FP64', shape: [2], data: [5200, 3750] },
        { name: 'sex', datatype: 'BYTES', shape: [2], data: ['FEMALE', 'MALE'] },
      ],
      outputs: [{ name: 'label' }, { name: 'score' }],
    }
    lines.push(`curl -s${auth} ${url}/v2/models/penguins`)
    lines.push(`curl -s${auth}${json} ${url}/v2/models/penguins/infer -d '${JSON.stringify(body)}'`)
  }
  if (models.includes('tiny_mlp')) {
    const body = { id: 'req-1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i / 16) }] }
    lines.push(`curl -s${auth} ${url}/v2/models/tiny_mlp/config`)
    lines.push(`curl -s${auth}${json} ${url}/v2/models/tiny_mlp/infer -d '${JSON.stringify(body)}'`)
  }
  if (models.includes('vad')) {
    // A sequence: the VAD's state stays in the server between the two requests.
    const chunk = (params: Record<string, unknown>) => ({ parameters: params, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 576], data: Array.from({ length: 576 }, (_, i) => Math.round(Math.sin(i / 8) * 1000) / 2000) }, { name: 'sr', datatype: 'INT64', shape: [], data: [16000] }] })
    lines.push(`curl -s${auth}${json} ${url}/v2/models/vad/infer -d '${JSON.stringify(chunk({ sequence_id: 42, sequence_start: true }))}'`)
    lines.push(`curl -s${auth}${json} ${url}/v2/models/vad/infer -d '${JSON.stringify(chunk({ sequence_id: 42, sequence_end: true }))}'`)
  }
  lines.push(`curl -s${auth} ${url}/v2/models/stats`)
  lines.push(`curl -s${auth} -X POST ${url}/v2/repository/index`)
  lines.push(`curl -s${auth} ${url}/metrics | grep oxinfer_inference_request_success`)
  return `\nTry:\n${lines.map((l) => `  ${l}`).join('\n')}\n\n`
}
