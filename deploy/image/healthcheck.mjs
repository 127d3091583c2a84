// The container's health check (Docker HEALTHCHECK): exits 0 when the server
// on OXINFER_PORT (default 8080) answers /v2/health/ready with 200, within 2 s.
const port = process.env.OXINFER_PORT || '8080'
fetch(`http://127.0.0.1:${port}/v2/health/ready`, { signal: AbortSignal.timeout(2000) }).then(
  (r) => process.exit(r.status === 200 ? 0 : 1),
  () => process.exit(1),
)
