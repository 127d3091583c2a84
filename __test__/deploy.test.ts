// Scale-out (issue #18): the Kubernetes, KEDA and KServe manifests under
// deploy/ validate against the API schemas (kubernetes-models for built-in
// kinds; the CRD schemas vendored in deploy/schemas for KServe and KEDA,
// strict about unknown fields as `kubectl apply --validate=strict` is), the
// kustomize overlays render, and the container image's build steps
// (deploy/image/build.sh) stage a package whose `oxinfer serve`, started as
// the Dockerfile starts it, passes the image's health check and exports the
// metrics the autoscalers read.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { Ajv, type ValidateFunction } from 'ajv'
import { afterAll, describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'

import { ensureExampleRepository } from '../scripts/example-repository.mjs'
import { freePort, root } from './helpers'
import { cargoFreeEnv } from './install-helpers'

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> }

const deploy = join(root, 'deploy')

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(f) ? [p] : []
  })
}

function parseYaml(text: string, where: string): Manifest[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(`${where}: ${d.errors[0].message}`)
    return d.toJS() as Manifest
  }).filter(Boolean)
}

/** A CRD schema made strict: objects without preserve-unknown-fields refuse fields they do not list. */
function strict(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strict)
  if (!schema || typeof schema !== 'object') return schema
  const out: any = {}
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([n, s]) => [n, strict(s)])) : strict(v)
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false
  return out
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false })
const crds = new Map<string, ValidateFunction>()
for (const dir of readdirSync(join(deploy, 'schemas')).filter((d) => statSync(join(deploy, 'schemas', d)).isDirectory())) {
  expect(existsSync(join(deploy, 'schemas', dir, 'LICENSE')), `${dir} has its licence`).toBe(true)
  for (const f of readdirSync(join(deploy, 'schemas', dir)).filter((f) => f.endsWith('.json'))) {
    const { apiVersion, kind, schema } = JSON.parse(readFileSync(join(deploy, 'schemas', dir, f), 'utf8'))
    // metadata is the API server's: the CRD schemas leave it open.
    const s = strict(schema)
    s.properties.metadata = { type: 'object' }
    crds.set(`${apiVersion}/${kind}`, ajv.compile(s))
  }
}

/** Validates one manifest; the problems found (none: []). */
async function problems(m: Manifest): Promise<string[]> {
  if (!m?.apiVersion || !m.kind) return ['no apiVersion or kind']
  if (!m.metadata?.name) return ['no metadata.name']
  const crd = crds.get(`${m.apiVersion}/${m.kind}`)
  if (crd) return crd(m) ? [] : (crd.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${e.params ? JSON.stringify(e.params) : ''}`)
  const [group, version] = m.apiVersion.includes('/') ? m.apiVersion.split('/') : ['', m.apiVersion]
  let Model: any
  try {
    Model = (await import(/* @vite-ignore */ `kubernetes-models/${group ? `${group}/` : ''}${version}/${m.kind}`))[m.kind]
  } catch {
    return [`no schema for ${m.apiVersion} ${m.kind}`]
  }
  try {
    new Model(m).validate()
    return []
  } catch (e) {
    return [String((e as Error).message)]
  }
}

/** A kustomize binary: OXINFER_KUSTOMIZE, kustomize on PATH or under ~/.cache/oxinfer/bin (.ci/run installs it there), or kubectl's. */
function kustomize(dir: string): string {
  const candidates: [string, string[]][] = [
    [process.env.OXINFER_KUSTOMIZE ?? '', ['build', dir]],
    ['kustomize', ['build', dir]],
    [join(homedir(), '.cache', 'oxinfer', 'bin', 'kustomize'), ['build', dir]],
    ['kubectl', ['kustomize', dir]],
  ]
  for (const [bin, args] of candidates) {
    if (!bin) continue
    const r = spawnSync(bin, args, { encoding: 'utf8' })
    if (r.error) continue
    if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  throw new Error('no kustomize found: .ci/run installs one under ~/.cache/oxinfer/bin')
}

const rendered = new Map<string, Manifest[]>()
function render(dir: string): Manifest[] {
  if (!rendered.has(dir)) rendered.set(dir, parseYaml(kustomize(join(deploy, 'k8s', dir)), dir))
  return rendered.get(dir)!
}

const args = (m: Manifest): string[] => m.spec.template.spec.containers[0].args
const flag = (a: string[], name: string): string | undefined => a[a.indexOf(name) + 1]

describe('manifests', () => {
  it('every manifest under deploy/ validates against its API schema (kustomizations aside)', async () => {
    const files = [...yamlFiles(join(deploy, 'k8s')), ...yamlFiles(join(deploy, 'kserve'))]
    const seen = new Set<string>()
    for (const file of files) {
      for (const m of parseYaml(readFileSync(file, 'utf8'), file)) {
        if (m.kind === 'Kustomization' || m.kind === 'Component') continue
        seen.add(m.kind)
        expect(await problems(m), `${relative(root, file)}: ${m.kind} ${m.metadata?.name}`).toEqual([])
      }
    }
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'ScaledObject', 'PodMonitor', 'ClusterServingRuntime', 'InferenceService', 'Job', 'PersistentVolumeClaim', 'ConfigMap']) expect(seen, kind).toContain(kind)
  })

  it('the validators refuse what the API server would: a wrong type, a misspelt CRD field, a string for a count', async () => {
    const dep = parseYaml(readFileSync(join(deploy, 'k8s', 'base', 'deployment.yaml'), 'utf8'), 'deployment')[0]
    const bad = structuredClone(dep)
    bad.spec.template.spec.containers[0].ports[0].containerPort = 'http'
    expect((await problems(bad)).join()).toMatch(/containerPort must be integer/)
    const runtime = parseYaml(readFileSync(join(deploy, 'kserve', 'clusterservingruntime.yaml'), 'utf8'), 'runtime')[0]
    const typo = structuredClone(runtime)
    typo.spec.supportedModelFormat = typo.spec.supportedModelFormats
    expect((await problems(typo)).join()).toMatch(/additionalProperty.*supportedModelFormat"/)
    const so = parseYaml(readFileSync(join(deploy, 'k8s', 'overlays', 'keda', 'scaledobject.yaml'), 'utf8'), 'so')[0]
    const wrong = structuredClone(so)
    wrong.spec.minReplicaCount = 'two'
    expect((await problems(wrong)).length).toBeGreaterThan(0)
    expect(await problems({ apiVersion: 'serving.kserve.io/v1beta1', kind: 'InferenceService', metadata: { name: 'x' }, spec: { predictor: { model: { modelFormat: { name: 'onnx' }, storageUri: 1 } } } })).not.toEqual([])
  })

  it('the kustomize base and overlays render to valid manifests with the intended differences', async () => {
    for (const dir of ['base', 'overlays/keda', 'overlays/production', 'jobs']) {
      for (const m of render(dir)) expect(await problems(m), `${dir}: ${m.kind} ${m.metadata.name}`).toEqual([])
    }
    const kinds = (dir: string) => render(dir).map((m) => m.kind).sort()
    expect(kinds('base')).toEqual(['Deployment', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Service'])
    expect(kinds('overlays/keda')).toEqual(['Deployment', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'PodMonitor', 'ScaledObject', 'Service'])
    const prod = render('overlays/production')
    expect(kinds('overlays/production')).toEqual(['Deployment', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'PodMonitor', 'Service'])
    for (const m of prod) expect(m.metadata.namespace, m.kind).toBe('oxinfer')
    // The Job runs where the overlays put the model repository's claim.
    for (const m of render('jobs')) expect(m.metadata.namespace, m.kind).toBe('oxinfer')
    const d = prod.find((m) => m.kind === 'Deployment')!
    // The autoscaler owns the replica count: an apply must not reset it.
    for (const dir of ['base', 'overlays/keda', 'overlays/production']) expect(render(dir).find((m) => m.kind === 'Deployment')!.spec.replicas, dir).toBeUndefined()
    expect(d.spec.template.spec.containers[0].resources.limits.cpu).toBe('4')
    expect(prod.find((m) => m.kind === 'HorizontalPodAutoscaler')!.spec.minReplicas).toBe(3)
    expect(prod.find((m) => m.kind === 'PodDisruptionBudget')!.spec.minAvailable).toBe(2)
  })

  it('probes, drain and grace period, ports and selectors agree with the server and each other', () => {
    const base = render('base')
    const d = base.find((m) => m.kind === 'Deployment')!
    const pod = d.spec.template.spec
    const c = pod.containers[0]
    expect(c.readinessProbe.httpGet.path).toBe('/v2/health/ready')
    expect(c.livenessProbe.httpGet.path).toBe('/v2/health/live')
    // The preStop pause plus the server's drain fit in the grace period.
    const drainS = Number(flag(args(d), '--drain-ms')) / 1000
    const pauseS = Number(c.lifecycle.preStop.exec.command[1])
    expect(pauseS + drainS).toBeLessThan(pod.terminationGracePeriodSeconds)
    expect(flag(args(d), '--port')).toBe(String(c.ports[0].containerPort))
    const svc = base.find((m) => m.kind === 'Service')!
    expect(svc.spec.ports[0].targetPort).toBe(c.ports[0].name)
    for (const sel of [svc.spec.selector, base.find((m) => m.kind === 'PodDisruptionBudget')!.spec.selector.matchLabels, d.spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(sel)) expect(d.spec.template.metadata.labels[k]).toBe(v)
    }
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    // The HPA reads the metric the adapter's rules serve, from a family the server exports.
    const hpa = base.find((m) => m.kind === 'HorizontalPodAutoscaler')!
    const rules = readFileSync(join(deploy, 'k8s', 'prometheus-adapter', 'rules.yaml'), 'utf8')
    expect(rules).toContain(`as: "${hpa.spec.metrics[0].pods.metric.name}"`)
    // Each pod's value is capped at twice the target, in the adapter's rule and in KEDA's query.
    const target = Number(hpa.spec.metrics[0].pods.target.averageValue)
    expect(rules).toContain(`clamp_max(sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>), ${2 * target})`)
    const keda = render('overlays/keda').find((m) => m.kind === 'ScaledObject')!.spec.triggers[0].metadata
    expect(keda.query).toMatch(new RegExp(`^sum\\(clamp_max\\(oxinfer_http_requests_in_flight\\{.*\\}, ${2 * Number(keda.threshold)}\\)\\)$`))
    // The PodMonitor scrapes the pods' named port and path that serve /metrics.
    const pm = render('overlays/production').find((m) => m.kind === 'PodMonitor')!
    expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({ port: c.ports[0].name, path: '/metrics' })
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) expect(d.spec.template.metadata.labels[k]).toBe(v)
    // The sharded Job's count is its completions, and the merge expects as many.
    const job = render('jobs').find((m) => m.kind === 'Job')!
    expect(job.spec.completionMode).toBe('Indexed')
    expect(flag(args(job), '--shard')).toBe(String(job.spec.completions))
    const merge = parseYaml(readFileSync(join(deploy, 'k8s', 'jobs', 'merge-job.yaml'), 'utf8'), 'merge')[0]
    expect(flag(args(merge), '--shards')).toBe(String(job.spec.completions))
    expect(flag(args(merge), 'merge')).toBe(flag(args(job), '--output'))
  })

  it('the KServe runtime serves the v2 protocol on the port it declares, for the formats the InferenceServices ask for', () => {
    const runtime = parseYaml(readFileSync(join(deploy, 'kserve', 'clusterservingruntime.yaml'), 'utf8'), 'runtime')[0]
    const c = runtime.spec.containers[0]
    expect(runtime.spec.protocolVersions).toEqual(['v2'])
    expect(runtime.spec.supportedModelFormats.map((f: { name: string }) => f.name).sort()).toEqual(['onnx', 'oxinfer-graph', 'oxinfer-pipeline'])
    expect(flag(c.args, '--repository')).toBe('/mnt/models')
    expect(flag(c.args, '--port')).toBe(String(c.ports[0].containerPort))
    expect(runtime.spec.annotations['prometheus.kserve.io/port']).toBe(String(c.ports[0].containerPort))
    const formats = new Set(runtime.spec.supportedModelFormats.map((f: { name: string }) => f.name))
    for (const f of readdirSync(join(deploy, 'kserve')).filter((f) => f.startsWith('inferenceservice'))) {
      const isvc = parseYaml(readFileSync(join(deploy, 'kserve', f), 'utf8'), f)[0]
      expect(formats, f).toContain(isvc.spec.predictor.model.modelFormat.name)
      expect(isvc.spec.predictor.model.runtime).toBe(runtime.metadata.name)
      expect(isvc.spec.predictor.model.protocolVersion).toBe('v2')
      // KServe names are DNS labels, and so must the repository's model folders be.
      expect(isvc.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    }
  })
})

/** The Dockerfile's exec-form instruction (ENTRYPOINT, CMD, or HEALTHCHECK's CMD) as an array. */
function dockerfileArray(text: string, instruction: string): string[] {
  const line = text.replace(/\\\n\s*/g, ' ').split('\n').find((l) => l.startsWith(`${instruction} `))
  if (!line) throw new Error(`the Dockerfile has no ${instruction}`)
  return JSON.parse(line.slice(line.indexOf('[')))
}

describe('container image', () => {
  const stage = mkdtempSync(join(tmpdir(), 'oxinfer-image-'))
  afterAll(() => rmSync(stage, { recursive: true, force: true }))

  it("the image's build steps stage a package that serves, as the Dockerfile runs it, passing its health check", async () => {
    const docker = readFileSync(join(deploy, 'Dockerfile'), 'utf8')
    expect(docker).toMatch(/^FROM rust:\$\{RUST_VERSION\}-bookworm AS build$/m)
    expect(docker.replace(/\\\n\s*/g, ' ')).toMatch(/^RUN .*deploy\/image\/build\.sh \/stage$/m)
    expect(docker).toMatch(/^COPY --from=build \/stage\/app \/app$/m)
    expect(docker).toMatch(/^USER node$/m)
    // The build stage's script, reusing this checkout's build (no second release compile).
    execFileSync(join(deploy, 'image', 'build.sh'), ['--reuse', stage], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })
    const app = join(stage, 'app')
    const modules = readdirSync(join(app, 'node_modules')).sort()
    expect(modules).toContain('oxinfer')
    expect(modules).toContain('oxinfer-linux-x64-gnu')
    expect(existsSync(join(app, 'node_modules', 'oxinfer-linux-x64-gnu', 'libonnxruntime.so.1'))).toBe(true)
    // Production dependencies only: no compilers, test tools or the dev build's ONNX Runtime package.
    for (const dev of ['vitest', 'typescript', '@napi-rs', 'onnxruntime-node', 'ajv']) expect(modules).not.toContain(dev)
    const entry = dockerfileArray(docker, 'ENTRYPOINT')
    const cmd = dockerfileArray(docker, 'CMD')
    const health = dockerfileArray(docker, 'HEALTHCHECK')
    const port = await freePort()
    const inImage = (a: string): string => a.replace(/^\/app\//, `${app}/`).replace(/^\/models$/, ensureExampleRepository()).replace(/^8080$/, String(port))
    const [exe, ...rest] = [...entry, ...cmd].map(inImage)
    expect(exe).toBe('node')
    const env = cargoFreeEnv({ OXINFER_PORT: String(port), NODE_ENV: 'production' })
    const server = spawn(process.execPath, rest, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    server.stdout.on('data', (d) => (out += d))
    server.stderr.on('data', (d) => (out += d))
    try {
      const healthy = async (): Promise<number | null> => spawnSync(process.execPath, health.slice(1).map(inImage), { env }).status
      let status: number | null = 1
      for (let i = 0; i < 300 && status !== 0 && server.exitCode === null; i++) {
        await new Promise((r) => setTimeout(r, 100))
        status = await healthy()
      }
      expect(status, out).toBe(0)
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      // What the HPA (through the adapter) and KEDA read.
      expect(metrics).toMatch(/^oxinfer_http_requests_in_flight /m)
      expect(metrics).toMatch(/^oxinfer_inference_pending_request_count\{model="penguins"/m)
      const infer = await fetch(`http://127.0.0.1:${port}/v2/models/tiny_mlp/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 16], data: Array(16).fill(0.5) }] }) })
      expect(infer.status).toBe(200)
      // SIGTERM (the Dockerfile's STOPSIGNAL) drains and exits 0.
      server.kill('SIGTERM')
      const code = await new Promise((r) => server.once('exit', r))
      expect(code, out).toBe(0)
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL')
    }
  }, 240_000)
})
