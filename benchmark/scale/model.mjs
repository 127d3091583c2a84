// The autoscaling simulation's model (benchmark/scale/run.mjs): a quasi-static
// fluid queue per replica driven by one measured replica's capacity curve
// (capacity.json: req/s, p50, p99 and CPU at concurrency 1 to 128):
// - below its capacity, a replica offered λ req/s holds the in-flight n at
//   which the curve's throughput X(n) = λ (interpolated in log n), with the
//   curve's p99 and CPU at n: requests take a millisecond or so, far less
//   than the simulation's step, so the queue settles within a step;
// - past its capacity (the curve's highest req/s), a backlog grows at the
//   excess rate, and each request waits the backlog / capacity on top of the
//   saturated p99; what would wait longer than the server's queue timeout
//   (1 s) is dropped;
// - its CPU is the curve's CPU at n, as a share of the CPU at saturation
//   (taken as the pod's limit: the most favourable reading for CPU scaling,
//   since a saturated replica then reads 100%);
// - the cluster: load split evenly over ready replicas (kube-proxy), new
//   replicas ready `startup` seconds after the HPA asks for them, and the HPA
//   as Kubernetes runs it: a sync every 15 s on the metric averaged over the
//   last 15 s (a Prometheus scrape interval or metrics-server's window),
//   desired = ceil(ready × metric / target) outside a 10% tolerance, pods
//   still starting counted as 0 while scaling up (desiredReplicas), and
//   the behavior of deploy/k8s/base/hpa.yaml (up: +100% or +4 pods per 15 s,
//   the larger; down: the highest recommendation of the last 300 s, at most
//   -20% per 60 s).

const TIMEOUT_S = 1
const SYNC_S = 15

/** The curve as functions of in-flight n: throughput, mean and p99 latency (ms), CPU share. */
export function replicaModel(capacity) {
  const pts = [...capacity.points].sort((a, b) => a.concurrency - b.concurrency)
  const maxCpu = Math.max(...pts.map((p) => p.cpuCores))
  const xMax = Math.max(...pts.map((p) => p.rps))
  const lerp = (n, key) => {
    if (n <= pts[0].concurrency) return (pts[0][key] * n) / pts[0].concurrency
    for (let i = 1; i < pts.length; i++) {
      if (n <= pts[i].concurrency) {
        const a = pts[i - 1]
        const b = pts[i]
        const f = (Math.log(n) - Math.log(a.concurrency)) / (Math.log(b.concurrency) - Math.log(a.concurrency))
        return a[key] + f * (b[key] - a[key])
      }
    }
    return pts[pts.length - 1][key]
  }
  const cMax = pts[pts.length - 1].concurrency
  /** The in-flight n at which the curve serves `rate` (the curve's last n at or past capacity). */
  const inFlightAt = (rate) => {
    if (rate >= xMax) return cMax
    let lo = 0
    let hi = cMax
    for (let i = 0; i < 40; i++) {
      const mid = (lo + hi) / 2
      if (lerp(mid, 'rps') < rate) lo = mid
      else hi = mid
    }
    return hi
  }
  const p99At = (n) => lerp(Math.max(n, pts[0].concurrency), 'p99')
  return {
    xMax,
    inFlightAt,
    /** The in-flight n at which the replica's CPU share reaches `share`. */
    inFlightAtCpu(share) {
      let n = pts[0].concurrency
      while (n < cMax && lerp(n, 'cpuCores') / maxCpu < share) n += 0.25
      return n
    },
    /**
     * One step of `dt` s at `rate` req/s with `backlog` requests waiting past
     * capacity: the new backlog, the in-flight count, the p99 (ms) of this
     * step's requests, the CPU share and the requests dropped.
     */
    step(rate, backlog, dt) {
      let q = Math.max(0, backlog + (rate - xMax) * dt)
      let dropped = 0
      if (q > xMax * TIMEOUT_S) {
        dropped = q - xMax * TIMEOUT_S
        q = xMax * TIMEOUT_S
      }
      const n = q > 0 ? cMax + q : inFlightAt(rate)
      const p99 = q > 0 ? p99At(cMax) + (1000 * q) / xMax : p99At(n)
      return { backlog: q, inFlight: n, p99, cpu: Math.min(1, lerp(Math.min(n, cMax), 'cpuCores') / maxCpu), dropped }
    },
  }
}

/** One replica at a constant offered load (req/s): its settled in-flight, p99 (ms) and drops per second. */
export function constantLoad(model, rate, seconds = 60, dt = 0.05) {
  let q = 0
  let last
  let dropped = 0
  for (let t = 0; t < seconds; t += dt) {
    last = model.step(rate, q, dt)
    q = last.backlog
    dropped += last.dropped
  }
  return { inFlight: last.inFlight, rps: Math.min(rate, model.xMax), p99: last.p99, droppedPerSecond: dropped / seconds }
}

/**
 * The HPA's desired replicas (Kubernetes' replica calculator, 10% tolerance):
 * from the ready pods' mean metric; while scaling up, pods not ready yet
 * (no metric) count as 0, and when that brings the ratio back within the
 * tolerance (or below 1) the count stays where it is.
 */
export function desiredReplicas(current, ready, notReady, metric, target) {
  if (ready === 0) return current
  const ratio = metric / target
  if (Math.abs(ratio - 1) <= 0.1) return current
  if (ratio > 1 && notReady > 0) {
    const withUnready = (metric * ready) / ((ready + notReady) * target)
    if (withUnready <= 1.1) return current
    return Math.max(current, Math.ceil(withUnready * (ready + notReady)))
  }
  return Math.ceil(ratio * ready)
}

/**
 * A cluster under `rate(t)` req/s for `duration` s with an HPA on `policy`:
 * { metric: 'cpu' | 'inflight', target, clamp?, min, max, startup, sloMs }.
 * Returns a timeline (one point per sync) and totals.
 */
export function cluster(model, policy, rate, duration, dt = 0.05) {
  // Each replica: in-flight n, and when it is ready.
  let replicas = Array.from({ length: policy.min }, () => ({ q: 0, readyAt: 0 }))
  const recommendations = []
  const timeline = []
  let lastDown = -Infinity
  let acc = { metric: 0, samples: 0, arrivals: 0, dropped: 0, slow: 0, worstP99: 0 }
  const totals = { arrivals: 0, dropped: 0, slow: 0, replicaSeconds: 0, worstP99: 0, peak: policy.min }
  for (let t = 0, nextSync = SYNC_S; t < duration; t += dt) {
    const ready = replicas.filter((r) => r.readyAt <= t)
    const lambda = rate(t)
    acc.arrivals += lambda * dt
    totals.arrivals += lambda * dt
    totals.replicaSeconds += replicas.length * dt
    if (ready.length === 0) {
      acc.dropped += lambda * dt
      totals.dropped += lambda * dt
    }
    let metric = 0
    for (const r of ready) {
      const a = (lambda * dt) / ready.length
      const s = model.step(lambda / ready.length, r.q, dt)
      r.q = s.backlog
      if (s.p99 > policy.sloMs) {
        acc.slow += a
        totals.slow += a
      }
      acc.worstP99 = Math.max(acc.worstP99, s.p99)
      acc.dropped += s.dropped
      totals.dropped += s.dropped
      // `clamp`: the adapter's query caps each pod's value (clamp_max), so a backlog reads as "full", not as thousands.
      metric += policy.metric === 'cpu' ? s.cpu : Math.min(s.inFlight, policy.clamp ?? Infinity)
    }
    acc.metric += ready.length ? metric / ready.length : 0
    acc.samples++
    if (t + dt >= nextSync) {
      const m = acc.metric / acc.samples
      const current = replicas.length
      let desired = desiredReplicas(current, ready.length, current - ready.length, m, policy.target)
      desired = Math.min(desired, Math.max(current * 2, current + 4))
      recommendations.push([t, desired])
      while (recommendations[0][0] < t - 300) recommendations.shift()
      if (desired < current) {
        desired = Math.max(desired, ...recommendations.map((x) => x[1]))
        // At most -20% a minute, of the count at the period's start (truncated, as Kubernetes does).
        if (desired < current && t - lastDown >= 60) desired = Math.max(desired, Math.floor(current * 0.8))
        else desired = current
      }
      desired = Math.max(policy.min, Math.min(policy.max, desired))
      if (desired < current) lastDown = t
      if (desired > current) for (let i = current; i < desired; i++) replicas.push({ q: 0, readyAt: t + policy.startup })
      // Removed pods drain what they hold; new requests go elsewhere at once.
      else if (desired < current) replicas = replicas.slice(0, desired)
      totals.peak = Math.max(totals.peak, replicas.length)
      totals.worstP99 = Math.max(totals.worstP99, acc.worstP99)
      timeline.push({ t: Math.round(t), rate: Math.round(lambda), replicas: replicas.length, ready: replicas.filter((r) => r.readyAt <= t).length, metric: Math.round(m * 100) / 100, p99: Math.round(acc.worstP99 * 100) / 100, dropped: Math.round(acc.dropped), slow: Math.round(acc.slow) })
      acc = { metric: 0, samples: 0, arrivals: 0, dropped: 0, slow: 0, worstP99: 0 }
      nextSync += SYNC_S
    }
  }
  return {
    timeline,
    arrivals: Math.round(totals.arrivals),
    dropped: Math.round(totals.dropped),
    droppedShare: totals.dropped / totals.arrivals,
    slowShare: totals.slow / totals.arrivals,
    worstP99: totals.worstP99,
    peakReplicas: totals.peak,
    replicaHours: totals.replicaSeconds / 3600,
  }
}
