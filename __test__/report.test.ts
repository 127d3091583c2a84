// `oxinfer profile` and `oxinfer report` as a user runs them (the built
// CLI, in a child process) on the penguins pipeline: a profile of half the
// rows stored in the spec, then reports over the held-out half (no drift)
// and over a shifted copy (bill length +12 mm, every bird on Biscoe),
// rendered by headless Chromium (Debian's `chromium`): the rendered DOM has
// one chart per feature, the flagged features marked, a quality line and
// latency percentiles. A screenshot is kept under __test__/artifacts/.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseHTML } from 'linkedom'
import { describe, expect, it } from 'vitest'

import { renderReport, type PipelineSpec } from '../index.js'
import { fixture, readJson, root } from './helpers'

const CLI = join(root, 'src', 'cli', 'main.js')
const { records, species } = readJson<{ records: Record<string, unknown>[]; species: string[] }>('penguins/records.json')
const withIds = records.map((r, i) => ({ ...r, id: `p${i}`, species: species[i] }))
// A seeded shuffle, then halves: the file is ordered by species and sexes
// alternate, so neither a prefix nor even/odd rows would be a fair split.
let seed = 2026
const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32
const order = withIds.map((_, i) => i)
for (let i = order.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1))
  ;[order[i], order[j]] = [order[j], order[i]]
}
const reference = order.slice(0, 172).map((i) => withIds[i])
const heldOut = order.slice(172).map((i) => withIds[i])
const shifted = heldOut.map((r) => ({ ...r, bill_length_mm: typeof r.bill_length_mm === 'number' ? r.bill_length_mm + 12 : null, island: 'Biscoe' }))

/** The first Chromium binary on PATH (Debian names it `chromium`). */
function chromium(): string {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  throw new Error('headless Chromium is needed for this test: apt-get install chromium (.ci/run installs it)')
}

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions', '--hide-scrollbars']

function dumpDom(browser: string, file: string): Document {
  const html = execFileSync(browser, [...FLAGS, '--dump-dom', `file://${file}`], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] })
  // The DOM as Chromium built it, parsed back for queries.
  return parseHTML(html).document as unknown as Document
}

function oxinfer(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 })
  return { status: r.status, stderr: r.stderr }
}

describe('oxinfer profile and report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'oxinfer-report-'))
  copyFileSync(fixture('penguins/penguins.onnx'), join(dir, 'penguins.onnx'))
  const spec = JSON.parse(readFileSync(fixture('penguins/pipeline.json'), 'utf8')) as PipelineSpec
  spec.fields = [...spec.fields, { name: 'id', type: 'category' }]
  writeFileSync(join(dir, 'pipeline.json'), JSON.stringify(spec, null, 2))
  const jsonl = (name: string, rows: Record<string, unknown>[]) => {
    writeFileSync(join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n')
    return join(dir, name)
  }
  const specPath = join(dir, 'pipeline.json')

  it('profiles reference records into the spec, and reports no drift on held-out rows and drift on a shifted copy', () => {
    const browser = chromium()
    // Profiling a spec fails clearly on CSV and on a missing file.
    expect(oxinfer(['profile', specPath, '-i', join(dir, 'nope.csv')]).stderr).toMatch(/ERR_INVALID_ARGUMENT: .*read JSONL or JSON records/)
    expect(oxinfer(['report', specPath, '-i', jsonl('held.jsonl', heldOut), '-o', join(dir, 'x.html')]).stderr).toMatch(/has no monitor.reference: build one with 'oxinfer profile/)
    expect(oxinfer(['profile', specPath, '-i', jsonl('ref.jsonl', reference), '--exclude', 'nope']).stderr).toMatch(/--exclude names no field: nope/)
    const p = oxinfer(['profile', specPath, '-i', join(dir, 'ref.jsonl'), '--exclude', 'id'])
    expect(p.status, p.stderr).toBe(0)
    const profiled = JSON.parse(readFileSync(specPath, 'utf8')) as PipelineSpec
    const names = profiled.monitor!.reference.features.map((f) => f.name)
    expect(names).toEqual(expect.arrayContaining(['bill_length_mm', 'island', 'sex', 'label']))
    expect(names).not.toContain('id')
    // Feedback by id needs the spec's feedback section.
    expect(oxinfer(['report', specPath, '-i', join(dir, 'held.jsonl'), '-o', join(dir, 'x.html'), '--truth', 'species']).stderr).toMatch(/--truth needs the spec's monitor.feedback/)
    profiled.monitor!.feedback = { idField: 'id', window: 100 }
    writeFileSync(specPath, JSON.stringify(profiled, null, 2))

    const held = oxinfer(['report', specPath, '-i', join(dir, 'held.jsonl'), '-o', join(dir, 'held.html'), '--truth', 'species', '--fail-on-drift'])
    expect(held.stderr).toMatch(/172 records \(0 failed\): no drift/)
    expect(held.status).toBe(0)
    const shift = oxinfer(['report', specPath, '-i', jsonl('shifted.jsonl', shifted), '-o', join(dir, 'shifted.html'), '--truth', 'species', '--fail-on-drift'])
    expect(shift.stderr).toMatch(/drift in .*bill_length_mm/)
    expect(shift.status).toBe(2)

    const calm = dumpDom(browser, join(dir, 'held.html'))
    expect(calm.querySelectorAll('figure.feature').length).toBe(names.length)
    expect(calm.querySelectorAll('figure.feature svg.chart.histogram').length).toBe(names.length)
    expect(calm.querySelectorAll('figure.feature.drifted').length).toBe(0)
    expect(calm.querySelector('.verdict')!.textContent).toBe('No feature drifts.')

    const doc = dumpDom(browser, join(dir, 'shifted.html'))
    const charts = [...doc.querySelectorAll('figure.feature')]
    expect(charts.map((f) => f.getAttribute('data-feature'))).toEqual(names)
    charts.forEach((f) => expect(f.querySelectorAll('svg.chart rect.ref').length).toBeGreaterThan(0))
    const flagged = [...doc.querySelectorAll('figure.feature.drifted')].map((f) => f.getAttribute('data-feature'))
    expect(flagged).toEqual(expect.arrayContaining(['bill_length_mm', 'island']))
    expect(flagged).not.toContain('body_mass_g')
    expect(Number(doc.querySelector('.verdict')!.getAttribute('data-drifted-count'))).toBe(flagged.length)
    expect([...doc.querySelectorAll('table.summary tr.drifted')].map((r) => r.getAttribute('data-feature'))).toEqual(flagged)
    // Quality over time: one line per metric the feedback gives (accuracy among them).
    expect([...doc.querySelectorAll('svg.chart.quality polyline.metric')].map((l) => l.getAttribute('data-metric'))).toEqual(expect.arrayContaining(['accuracy', 'precision', 'recall']))
    expect([...doc.querySelectorAll('table.latency tr')].map((r) => r.getAttribute('data-percentile'))).toEqual(['p50', 'p90', 'p99', 'max'])
    // Self-contained: no scripts, nothing fetched.
    const html = readFileSync(join(dir, 'shifted.html'), 'utf8')
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\/(?!www\.w3\.org)/)

    const artifacts = join(root, '__test__', 'artifacts')
    mkdirSync(artifacts, { recursive: true })
    const shot = join(artifacts, 'drift-report.png')
    execFileSync(browser, [...FLAGS, `--screenshot=${shot}`, '--window-size=1240,2400', `file://${join(dir, 'shifted.html')}`], { timeout: 60_000, stdio: 'ignore' })
    expect(existsSync(shot)).toBe(true)
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG')
  }, 240_000)

  it('renders names safely and copes with empty windows and no feedback', () => {
    const html = renderReport({
      title: '<script>x</script>',
      drift: { records: 0, window: 10, checks: 0, drifted: [], features: [{ name: 'a"<b>', role: 'input', records: 0, drifted: false }] },
    })
    expect(html).not.toContain('<script>x')
    expect(html).toContain('&lt;script&gt;')
    expect(html).toContain('No values in the window.')
    expect(html).toContain('no online quality')
    expect(html).toContain('No latencies were recorded.')
  })
})
