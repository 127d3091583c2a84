// The server's Prometheus metrics as a registry that prom-client can merge
// (`Registry.merge([register, server.registry()])`), so a host service
// exposes its own metrics and oxinfer's on one /metrics route. The figures
// and their shapes come from Rust; this only adapts them to prom-client's
// metric interface, reading one native snapshot per scrape.

/** One sample, as prom-client's `metric.get()` lists it. */
export interface MetricSample {
  labels: Record<string, string | number>
  value: number
  /** Set for a histogram's `_bucket`, `_sum` and `_count` samples. */
  metricName?: string
}

/** One metric family, as prom-client's `metric.get()` resolves it. */
export interface MetricSnapshot {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  values: MetricSample[]
  aggregator: 'sum'
}

/** A metric in prom-client's shape: what `Registry.merge` and `registry.metrics()` call. */
export interface MergeableMetric {
  readonly name: string
  readonly help: string
  readonly type: MetricSnapshot['type']
  readonly aggregator: 'sum'
  get(): Promise<MetricSnapshot>
  /** The figures are the server's own: a host's reset leaves them as they are. */
  reset(): void
}

/** The subset of prom-client's Registry that merging and scraping use. */
export interface MergeableRegistry {
  readonly contentType: string
  getMetricsAsArray(): MergeableMetric[]
  getSingleMetric(name: string): MergeableMetric | undefined
  getMetricsAsJSON(): Promise<MetricSnapshot[]>
  /** The text exposition, as `GET /metrics` answers. */
  metrics(): Promise<string>
}

/** @internal A registry over `read` (the native JSON snapshot) and `text` (the native exposition). */
export function mergeableRegistry(read: () => string, text: () => string): MergeableRegistry {
  // One native snapshot per scrape: every metric's get() in the same turn shares it.
  let cached: MetricSnapshot[] | null = null
  const snapshot = (): MetricSnapshot[] => {
    if (cached === null) {
      cached = JSON.parse(read()) as MetricSnapshot[]
      setImmediate(() => {
        cached = null
      })
    }
    return cached
  }
  const metrics: MergeableMetric[] = snapshot().map(({ name, help, type }) => ({
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: () => Promise.resolve().then(() => snapshot().find((m) => m.name === name) ?? { name, help, type, values: [], aggregator: 'sum' as const }),
    reset: () => {},
  }))
  return {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    getMetricsAsArray: () => metrics.slice(),
    getSingleMetric: (name) => metrics.find((m) => m.name === name),
    getMetricsAsJSON: () => Promise.all(metrics.map((m) => m.get())),
    metrics: () => Promise.resolve().then(text),
  }
}
