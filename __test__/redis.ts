// A real Redis server for tests (Debian's redis-server): started on a free
// loopback port with no persistence, and stopped, killed, paused or
// restarted on that port by the tests that need Redis to fail.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createConnection } from 'node:net'

import { freePort } from './helpers'

export interface TestRedis {
  port: number
  url: string
  /** SIGKILL: Redis gone at once, connections reset. */
  kill(): Promise<void>
  /** Starts it again on the same port (empty). */
  restart(): Promise<void>
  /** SIGSTOP / SIGCONT: Redis accepts connections but never answers. */
  pause(): void
  resume(): void
  stop(): Promise<void>
}

/** Whether a redis-server binary is on PATH. */
export function haveRedis(): boolean {
  return spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).status === 0
}


/** Resolves once Redis answers PING on `port` (rejects after 10 s). */
async function ready(port: number): Promise<void> {
  const end = Date.now() + 10_000
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ port, host: '127.0.0.1' })
      c.once('error', () => resolve(false))
      c.once('connect', () => c.write('PING\r\n'))
      c.once('data', (d) => {
        c.destroy()
        resolve(String(d).startsWith('+PONG'))
      })
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`redis-server did not answer on port ${port}`)
}

export async function startRedis(): Promise<TestRedis> {
  if (!haveRedis()) throw new Error('these tests need redis-server: apt-get install redis-server (.ci/run installs it)')
  const port = await freePort()
  let proc: ChildProcess | null = null
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' })
    await ready(port)
  }
  const exited = () =>
    new Promise<void>((resolve) => {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve()
      proc.once('exit', () => resolve())
    })
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}/`,
    kill: async () => {
      proc?.kill('SIGKILL')
      await exited()
    },
    restart: launch,
    pause: () => proc?.kill('SIGSTOP'),
    resume: () => proc?.kill('SIGCONT'),
    stop: async () => {
      proc?.kill('SIGCONT')
      proc?.kill('SIGTERM')
      await exited()
    },
  }
}
