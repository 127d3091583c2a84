// The shipped Grafana dashboard (deploy/grafana/oxinfer.json): well formed
// as Grafana reads it (unique panel ids, grid positions inside 24 columns,
// every query on the data-source variable), and every metric a panel
// queries is one a running server exports, with the labels the query uses.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { ensureExampleRepository } from '../scripts/example-repository.mjs'
import { serve } from '../index.js'
import { root } from './helpers'

type Panel = { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: { expr: string; legendFormat?: string; datasource: { uid: string } }[] }
const dash = JSON.parse(readFileSync(join(root, 'deploy', 'grafana', 'oxinfer.json'), 'utf8')) as {
  uid: string
  schemaVersion: number
  panels: Panel[]
  templating: { list: { name: string; type: string }[] }
}

describe('the Grafana dashboard', () => {
  it('is well formed', () => {
    expect(dash.uid).toBe('oxinfer-overview')
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dash.templating.list.map((v) => [v.name, v.type])).toEqual([
      ['datasource', 'datasource'],
      ['model', 'query'],
    ])
    const ids = dash.panels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24)
      if (p.type === 'row') continue
      expect(p.targets!.length, p.title).toBeGreaterThan(0)
      for (const t of p.targets!) expect(t.datasource.uid).toBe('${datasource}')
    }
    // No two panels overlap.
    const cells = new Set<string>()
    for (const p of dash.panels)
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false)
          cells.add(`${x},${y}`)
        }
  })

  it('queries only metrics and labels the server exports', async () => {
    const server = await serve({ repository: ensureExampleRepository(), port: 0 })
    try {
      const exported = new Map(server.registry().getMetricsAsArray().map((m) => [m.name, m.type]))
      const queries = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })))
      expect(queries.length).toBeGreaterThan(20)
      const used = new Set<string>()
      for (const { title, expr } of queries) {
        for (const [token] of expr.matchAll(/\boxinfer_[a-z0-9_]+/g)) {
          // A family by its own name, or a histogram's _bucket/_sum/_count series.
          const base = exported.has(token) ? token : token.replace(/_(bucket|sum|count)$/, '')
          expect(exported.has(base), `${title}: ${token} is not exported`).toBe(true)
          if (base !== token) expect(exported.get(base), `${title}: ${token} needs a histogram`).toBe('histogram')
          used.add(base)
        }
      }
      // Every family the server exports has a panel.
      expect([...exported.keys()].filter((n) => !used.has(n))).toEqual([])
      // An aggregated query keeps only its `by` labels: its legend may name no other.
      for (const p of dash.panels)
        for (const t of p.targets ?? []) {
          const by = t.expr.match(/\bby \(([^)]*)\)/)
          if (!by) continue
          const kept = new Set(by[1].split(',').map((l) => l.trim()))
          for (const [, label] of (t.legendFormat ?? '').matchAll(/\{\{(\w+)\}\}/g)) expect(kept.has(label), `${p.title}: legend {{${label}}} is aggregated away`).toBe(true)
        }
    } finally {
      await server.close()
    }
  })
})
