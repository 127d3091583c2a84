// oxinfer/fastify: a Fastify plugin that mounts the KServe v2 routes (and
// /metrics) on an existing Fastify app. Fastify hands each raw body to the
// native protocol handler, which decodes, batches, runs and encodes it off
// the JS thread; the JS cost per request is Fastify's routing and one hop.
// The standalone server (`serve`) is faster: use this where the app already
// runs Fastify and wants one port.
import { handleExchange, serve, type ServeOptions, type Server } from './server'

/**
 * Options of the plugin: those of `serve` (without host, port and listen), or
 * a server to reuse. Fastify's own `prefix` register option mounts the
 * routes under a prefix.
 */
export type OxinferPluginOptions = (Omit<ServeOptions, 'host' | 'port' | 'listen'> | { server: Server }) & { prefix?: string }

interface FastifyLike {
  /** The prefix Fastify mounts this plugin's routes under. */
  readonly prefix?: string
  addContentTypeParser(type: string, opts: { parseAs: 'buffer' }, parser: (req: unknown, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => void): void
  route(opts: { method: string[]; url: string; bodyLimit?: number; handler: (req: RequestLike, reply: ReplyLike) => Promise<unknown> }): void
  addHook(name: 'onClose', hook: () => Promise<void>): void
}
interface RequestLike {
  method: string
  url: string
  raw: { url?: string; headers: Record<string, string | string[] | undefined> }
  body?: unknown
}
interface ReplyLike {
  code(status: number): ReplyLike
  header(name: string, value: string): ReplyLike
  send(body: Buffer): ReplyLike
}

const EMPTY = Buffer.alloc(0)

/**
 * Registers the protocol routes: `app.register(oxinfer, { repository })`.
 * The server it starts (without a socket of its own) closes with the app.
 * To use the server in-process too (`session()`, `stats()`), start it with
 * `serve({ repository, listen: false })` and pass it as `{ server }`; it is
 * then yours to close. The routes stay encapsulated: the raw-body parsing
 * they need applies to them only.
 */
export async function oxinferPlugin(app: FastifyLike, options: OxinferPluginOptions): Promise<void> {
  const { prefix: _ignored, ...rest } = options as OxinferPluginOptions & Record<string, unknown>
  // Fastify prefixes the routes itself; the native handler sees the path without it.
  const prefix = app.prefix ?? ''
  const owned = !('server' in rest)
  const server = 'server' in rest ? (rest.server as Server) : await serve({ ...(rest as ServeOptions), listen: false })
  // Bodies reach the native decoder as they came (JSON or binary tensors).
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  const handler = async (req: RequestLike, reply: ReplyLike): Promise<unknown> => {
    const headers: string[][] = []
    for (const [k, v] of Object.entries(req.raw.headers)) {
      if (v === undefined || k === 'content-length' || k === 'host' || k === 'connection' || k === 'transfer-encoding') continue
      if (Array.isArray(v)) for (const x of v) headers.push([k, x])
      else headers.push([k, v])
    }
    const url = prefix && req.url.startsWith(prefix) ? req.url.slice(prefix.length) : req.url
    const r = await handleExchange(server, req.method, url, headers, Buffer.isBuffer(req.body) ? req.body : EMPTY)
    reply.code(r.status)
    for (const [k, v] of r.headers) if (k !== 'content-length') reply.header(k, v)
    return reply.send(r.body)
  }
  // The server's own body limit applies, not Fastify's 1 MiB default.
  const bodyLimit = ('maxBodyBytes' in rest && typeof rest.maxBodyBytes === 'number' ? rest.maxBodyBytes : undefined) ?? 64 << 20
  app.route({ method: ['GET', 'POST'], url: '/v2', bodyLimit, handler })
  app.route({ method: ['GET', 'POST'], url: '/v2/*', bodyLimit, handler })
  app.route({ method: ['GET'], url: '/metrics', handler })
  if (owned) app.addHook('onClose', () => server.close())
}

export default oxinferPlugin
