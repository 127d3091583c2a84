// An existing Fastify service that adds model serving on its own port:
// its routes stay as they are, and oxinfer/fastify mounts the KServe v2
// routes under /ml (bodies go to the native handler as they came).
//   node examples/fastify-app.mjs   (PORT=0 picks a free port)
import Fastify from 'fastify'
import oxinfer from 'oxinfer/fastify'
import { fileURLToPath } from 'node:url'

const repository = fileURLToPath(new URL('./repository', import.meta.url))
const app = Fastify({ logger: false })
app.get('/hello', async () => ({ hello: 'world' }))
await app.register(oxinfer, { repository, load: ['penguins', 'tiny_mlp'], prefix: '/ml' })
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
console.log(`listening on ${address}: try ${address}/ml/v2/models/penguins`)
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close().then(() => process.exit(0)))
