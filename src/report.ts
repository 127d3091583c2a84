// The drift report: one self-contained HTML page (inline SVG, inline CSS,
// no scripts, nothing fetched) from figures the native monitor computed:
// per-feature histograms of the reference against the current window with
// their drift statistics (drifted features flagged), online quality over
// time, and latency percentiles. Rendering only: every statistic comes
// from `pipeline.drift()` / `quality()`; nothing is recomputed here.
import type { DriftHistogram, DriftReport, FeatureDrift, Quality } from './monitor'

/** What a report shows. */
export interface ReportInput {
  /** The page's heading (a model or spec name). */
  title: string
  /** Where the current data came from (a file name, a time range). */
  source?: string
  /** When the figures were taken (default: now). */
  generatedAt?: Date
  /** `pipeline.drift()` over the current data. */
  drift: DriftReport
  /** `pipeline.quality()` snapshots, each after `records` records, oldest first. */
  quality?: { records: number; quality: Quality }[]
  /** Request latencies in µs (each one request's wall time). */
  latencyUs?: number[]
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

/** A number in 4 significant digits, without trailing zeros. */
function num(x: number): string {
  if (!Number.isFinite(x)) return String(x)
  if (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3)) return x.toExponential(2)
  return String(Number(x.toPrecision(4)))
}

/** Bin labels: numeric ranges from the deciles, or category names; the last is missing. */
function binLabels(h: DriftHistogram): string[] {
  if (h.categories) return [...h.categories.map((c) => (c === '' ? '(empty)' : c)), 'missing']
  const e = h.edges ?? []
  // One distinct reference value (or none): a single numeric bin.
  if (e.length === 0) return ['values', 'missing']
  const labels = [`< ${num(e[0])}`]
  for (let i = 1; i < e.length; i++) labels.push(`${num(e[i - 1])}–${num(e[i])}`)
  labels.push(`≥ ${num(e[e.length - 1])}`, 'missing')
  return labels
}

/** The statistics a feature was judged by, as "name value" pairs. */
function statLine(f: FeatureDrift): [string, number][] {
  const pairs: [string, number | undefined][] = [
    ['PSI', f.psi],
    ['KS', f.ks],
    ['KS p', f.ksP],
    ['missing p', f.missingP],
    ['χ²', f.chi2],
    ['χ² p', f.chi2P],
    ['JS', f.js],
  ]
  return pairs.filter((p): p is [string, number] => p[1] !== undefined)
}

const W = 560
const H = 200
const PAD = { left: 44, right: 8, top: 12, bottom: 46 }

/** Grouped bars: the reference's share and the window's share of each bin. */
function histogramSvg(f: FeatureDrift): string {
  const h = f.histogram
  if (!h) return `<p class="empty">No values in the window.</p>`
  const labels = binLabels(h)
  // Bins empty on both sides (an unused missing bin) are left out.
  const keep = labels.map((_, i) => i).filter((i) => h.reference[i] > 0 || h.current[i] > 0)
  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0) || 1
  const [rt, ct] = [total(h.reference), total(h.current)]
  const shares = keep.map((i) => [h.reference[i] / rt, h.current[i] / ct])
  const top = Math.max(0.01, ...shares.flat())
  const plotW = W - PAD.left - PAD.right
  const plotH = H - PAD.top - PAD.bottom
  const group = plotW / Math.max(1, keep.length)
  const bar = Math.max(1, group * 0.38)
  const y = (v: number) => PAD.top + plotH * (1 - v / top)
  const parts: string[] = []
  for (const t of [0, 0.5, 1]) {
    const v = top * t
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`)
    parts.push(`<text x="${PAD.left - 4}" y="${(y(v) + 3).toFixed(1)}" class="axis" text-anchor="end">${Math.round(v * 100)}%</text>`)
  }
  keep.forEach((bin, k) => {
    const x0 = PAD.left + k * group + group * 0.1
    const [r, c] = shares[k]
    parts.push(`<rect class="ref" x="${x0.toFixed(1)}" y="${y(r).toFixed(1)}" width="${bar.toFixed(1)}" height="${(PAD.top + plotH - y(r)).toFixed(1)}"><title>reference ${esc(labels[bin])}: ${(r * 100).toFixed(1)}% (${h.reference[bin]})</title></rect>`)
    parts.push(`<rect class="cur" x="${(x0 + bar).toFixed(1)}" y="${y(c).toFixed(1)}" width="${bar.toFixed(1)}" height="${(PAD.top + plotH - y(c)).toFixed(1)}"><title>current ${esc(labels[bin])}: ${(c * 100).toFixed(1)}% (${h.current[bin]})</title></rect>`)
    const lx = PAD.left + k * group + group / 2
    const ly = H - PAD.bottom + 12
    parts.push(`<text x="${lx.toFixed(1)}" y="${ly}" class="axis" text-anchor="end" transform="rotate(-30 ${lx.toFixed(1)} ${ly})">${esc(labels[bin].length > 14 ? labels[bin].slice(0, 13) + '…' : labels[bin])}</text>`)
  })
  return `<svg class="chart histogram" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(f.name)}: reference against current">${parts.join('')}</svg>`
}

function featureSection(f: FeatureDrift): string {
  const stats = statLine(f)
    .map(([k, v]) => `<span class="stat"><b>${esc(k)}</b> ${num(v)}</span>`)
    .join(' ')
  const flag = f.drifted ? '<span class="badge">drift</span>' : '<span class="ok">no drift</span>'
  return `<figure class="feature${f.drifted ? ' drifted' : ''}" id="f-${esc(f.name)}" data-feature="${esc(f.name)}" data-drifted="${f.drifted}">
<figcaption><span class="name">${esc(f.name)}</span> <span class="role">${f.role}</span> ${flag}<br>${stats} <span class="stat"><b>window</b> ${f.records}</span></figcaption>
${histogramSvg(f)}
</figure>`
}

const METRICS = ['accuracy', 'precision', 'recall', 'auc', 'mae', 'rmse'] as const
const COLOURS: Record<(typeof METRICS)[number], string> = { accuracy: '#1f77b4', precision: '#2ca02c', recall: '#9467bd', auc: '#ff7f0e', mae: '#d62728', rmse: '#8c564b' }

/** Lines of each quality metric against records seen. */
function qualitySvg(points: { records: number; quality: Quality }[]): string {
  const present = METRICS.filter((m) => points.some((p) => typeof p.quality[m] === 'number'))
  if (points.length === 0 || present.length === 0) return '<p class="empty">No outcomes were fed back, so there is no online quality to show.</p>'
  const values = points.flatMap((p) => present.map((m) => p.quality[m]).filter((v): v is number => typeof v === 'number'))
  const [lo, hi] = [Math.min(0, ...values), Math.max(1, ...values)]
  const [x0, x1] = [points[0].records, points[points.length - 1].records]
  const plotW = W - PAD.left - PAD.right
  const plotH = H - PAD.top - 28
  const x = (r: number) => PAD.left + (x1 === x0 ? plotW / 2 : ((r - x0) / (x1 - x0)) * plotW)
  const y = (v: number) => PAD.top + plotH * (1 - (v - lo) / (hi - lo || 1))
  const parts: string[] = []
  for (const t of [0, 0.5, 1]) {
    const v = lo + (hi - lo) * t
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${PAD.left - 4}" y="${(y(v) + 3).toFixed(1)}" class="axis" text-anchor="end">${num(v)}</text>`)
  }
  parts.push(`<text x="${PAD.left}" y="${H - 8}" class="axis">${x0} records</text><text x="${W - PAD.right}" y="${H - 8}" class="axis" text-anchor="end">${x1} records</text>`)
  for (const m of present) {
    const pts = points.filter((p) => typeof p.quality[m] === 'number').map((p) => `${x(p.records).toFixed(1)},${y(p.quality[m]!).toFixed(1)}`)
    parts.push(`<polyline class="metric" data-metric="${m}" fill="none" stroke="${COLOURS[m]}" stroke-width="2" points="${pts.join(' ')}"><title>${m}</title></polyline>`)
  }
  const legend = present.map((m) => `<span class="key" style="color:${COLOURS[m]}">■ ${m} ${num(points[points.length - 1].quality[m] ?? NaN)}</span>`).join(' ')
  return `<svg class="chart quality" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="online quality over time">${parts.join('')}</svg><p class="legend">${legend}</p>`
}

/** Nearest-rank percentile of sorted `xs`. */
function pct(xs: number[], q: number): number {
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]
}

function latencySection(us: number[] | undefined): string {
  if (!us || us.length === 0) return '<p class="empty">No latencies were recorded.</p>'
  const xs = [...us].sort((a, b) => a - b)
  const qs: [string, number][] = [
    ['p50', pct(xs, 0.5)],
    ['p90', pct(xs, 0.9)],
    ['p99', pct(xs, 0.99)],
    ['max', xs[xs.length - 1]],
  ]
  const top = Math.max(1, ...qs.map((q) => q[1]))
  const rows = qs.map(([k, v]) => `<tr data-percentile="${k}"><th>${k}</th><td>${num(v / 1000)} ms</td><td><svg class="bar" width="240" height="12"><rect x="0" y="1" height="10" width="${((240 * v) / top).toFixed(1)}" class="cur"/></svg></td></tr>`).join('')
  return `<table class="latency"><caption>${xs.length} requests</caption>${rows}</table>`
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666}.summary td,.summary th{padding:3px 10px;text-align:left}.summary tr.drifted{background:#fdecea}
.features{display:flex;flex-wrap:wrap;gap:16px}.feature{margin:0;padding:10px;border:1px solid #ddd;border-radius:6px;width:${W}px}
.feature.drifted{border-color:#d62728;box-shadow:0 0 0 2px #f5b7b1}.name{font-weight:600}.role{color:#888;font-size:12px}
.badge{background:#d62728;color:#fff;border-radius:3px;padding:0 6px;font-size:12px}.ok{color:#2a7a2a;font-size:12px}
.stat{font-size:12px;color:#444;margin-right:8px}.chart{display:block;margin-top:6px}.grid{stroke:#eee}.axis{font-size:10px;fill:#666}
rect.ref{fill:#b8b8b8}rect.cur{fill:#1f77b4}.drifted rect.cur{fill:#d62728}.legend .key{margin-right:12px}
.latency th,.latency td{padding:2px 10px;text-align:left}.empty{color:#888}.swatch{display:inline-block;width:10px;height:10px}`

/** The report as one HTML document. */
export function renderReport(input: ReportInput): string {
  const { drift } = input
  const when = (input.generatedAt ?? new Date()).toISOString()
  const flagged = drift.features.filter((f) => f.drifted)
  const summary = drift.features
    .map((f) => {
      const stats = statLine(f)
        .map(([k, v]) => `${k} ${num(v)}`)
        .join(', ')
      return `<tr class="${f.drifted ? 'drifted' : ''}" data-feature="${esc(f.name)}"><td><a href="#f-${esc(f.name)}">${esc(f.name)}</a></td><td>${f.role}</td><td>${f.records}</td><td>${esc(stats)}</td><td>${f.drifted ? '<span class="badge">drift</span>' : 'ok'}</td></tr>`
    })
    .join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(input.title)}: drift report</title><style>${CSS}</style></head>
<body>
<h1>${esc(input.title)}: drift report</h1>
<p class="meta">${input.source ? `${esc(input.source)} · ` : ''}${drift.records} records observed, window ${drift.window} · generated ${when}</p>
<p class="verdict" data-drifted-count="${flagged.length}">${flagged.length === 0 ? 'No feature drifts.' : `<span class="badge">${flagged.length} drifted</span> ${flagged.map((f) => esc(f.name)).join(', ')}`}</p>
<p class="meta"><span class="swatch" style="background:#b8b8b8"></span> reference · <span class="swatch" style="background:#1f77b4"></span> current (red where the feature drifts)</p>
<h2>Summary</h2>
<table class="summary"><tr><th>feature</th><th>role</th><th>window</th><th>statistics</th><th>status</th></tr>${summary}</table>
<h2>Features</h2>
<div class="features">${drift.features.map(featureSection).join('\n')}</div>
<h2>Quality over time</h2>
<section class="quality-section">${qualitySvg(input.quality ?? [])}</section>
<h2>Latency</h2>
<section class="latency-section">${latencySection(input.latencyUs)}</section>
</body></html>
`
}
