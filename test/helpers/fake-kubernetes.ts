// A stand-in Kubernetes for provider tests, since no cluster can run here: an HTTPS API server
// (self-signed CA in the kubeconfig, bearer token required) implementing the part of the v1 Pod
// API the KubernetesProvider uses, with Kubernetes' JSON shapes, status codes and Status error
// objects; and a "kubelet" that runs each pod's container command as a real local process
// (bash), moving the pod through Pending -> Running -> Succeeded/Failed as a kubelet does.
//
// What is simulated, on request per image name (`behaviours`): unschedulable pods, image pull
// failures, container config errors, CrashLoopBackOff, OOMKilled and eviction. Those states are
// written the way a kubelet writes them (shapes checked against recorded pods in
// test/fixtures/kubernetes/), but nothing here enforces memory limits or pulls images.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type Behaviour = 'run' | 'unschedulable' | 'image-pull-backoff' | 'invalid-image-name' | 'config-error' | 'crash-loop' | 'oom-killed' | 'evicted'

export interface FakeKubernetesOptions {
  /** What the kubelet does with pods of a given image (default 'run'). */
  behaviours?: Record<string, Behaviour>
  /** Namespaces that exist (default ['default']). */
  namespaces?: string[]
  /** Accept connections but never answer: an API server that hangs. */
  hang?: boolean
  /** A ResourceQuota on limits.cpu (cores) per namespace: pods beyond it are refused with 403. */
  cpuQuota?: number
  /**
   * Nodes as network namespaces (test/helpers/netns.ts): pods are placed on them in turn and
   * run inside them, so a pod has its node's address and reaches the workflow over the bridge.
   * Without nodes, pods run in this host's network on a node called fake-node-1.
   */
  nodes?: { name: string; address: string }[]
}

type Json = Record<string, any>

interface PodRecord {
  pod: Json
  process?: ChildProcess
  pgid?: number
  logPath: string
  deleting?: boolean
  timers: NodeJS.Timeout[]
}

export interface FakeKubernetes {
  url: string
  /** A kubeconfig file (JSON is valid YAML) pointing at this server. */
  kubeconfig: string
  /** Requests seen, as "METHOD path?query". */
  requests: string[]
  pods(): Json[]
  pod(name: string, namespace?: string): Json | undefined
  secret(name: string, namespace?: string): Json | undefined
  /** Deletes a pod behind the provider's back, as `kubectl delete --now` would. */
  deleteOutOfBand(name: string, namespace?: string): void
  close(): Promise<void>
}

const TOKEN = 'tsflow-test-token'

function status(code: number, reason: string, message: string, details?: Json): Json {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code }
}

/** A Kubernetes quantity in base units (cores, bytes): "500m", "2", "1536Mi", "2Gi", "1e3". */
function quantity(text: string): number {
  const m = /^([0-9.]+(?:e[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(text))
  if (!m) return NaN
  const scale: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }
  return Number(m[1]) * (m[2] ? scale[m[2]]! : 1)
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z')
}

/** Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
function matches(selector: string | null, labels: Record<string, string> = {}): boolean {
  if (!selector) return true
  return selector.split(',').every((term) => {
    const part = term.trim()
    let m: RegExpMatchArray | null
    if ((m = part.match(/^([^!=]+)!=(.*)$/))) return labels[m[1]!.trim()] !== m[2]!.trim()
    if ((m = part.match(/^([^!=]+)==?(.*)$/))) return labels[m[1]!.trim()] === m[2]!.trim()
    if (part.startsWith('!')) return !(part.slice(1) in labels)
    return part in labels
  })
}

let certificate: { cert: string; key: string } | undefined

/** One self-signed certificate for 127.0.0.1 per test process (openssl). */
function selfSigned(): { cert: string; key: string } {
  if (certificate) return certificate
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-k8s-cert-'))
  try {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' })
    } catch {
      throw new Error('the stand-in Kubernetes API server needs openssl(1) to make its certificate (apt-get install openssl)')
    }
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=tsflow-fake-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' })
    certificate = { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
    return certificate
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Whether this process may make private mount namespaces (root with unshare): Secret volumes need them. */
export const mountNamespaces = (() => {
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

export async function startFakeKubernetes(options: FakeKubernetesOptions = {}): Promise<FakeKubernetes> {
  const root = mkdtempSync(join(tmpdir(), 'tsflow-fake-k8s-'))
  const namespaces = new Set(options.namespaces ?? ['default'])
  const behaviours = options.behaviours ?? {}
  const records = new Map<string, PodRecord>() // key: namespace/name
  const secrets = new Map<string, Json>() // key: namespace/name
  const requests: string[] = []
  let resourceVersion = 1000
  let placed = 0
  let closed = false
  const hanging = new Set<ServerResponse>()

  const bump = (pod: Json) => {
    pod.metadata.resourceVersion = String(++resourceVersion)
  }
  const setCondition = (pod: Json, type: string, value: 'True' | 'False', extra: Json = {}) => {
    const conditions: Json[] = (pod.status.conditions ??= [])
    const existing = conditions.find((c) => c.type === type)
    const condition = { type, status: value, lastProbeTime: null, lastTransitionTime: now(), ...extra }
    if (existing) Object.assign(existing, condition)
    else conditions.push(condition)
  }
  const containerStatus = (pod: Json, state: Json, extra: Json = {}) => {
    const container = pod.spec.containers[0]
    pod.status.containerStatuses = [
      { name: container.name, image: container.image, imageID: '', lastState: {}, ready: 'running' in state, restartCount: 0, started: 'running' in state, state, ...extra },
    ]
  }
  const remove = (key: string) => {
    const record = records.get(key)
    if (!record) return
    for (const timer of record.timers) clearTimeout(timer)
    records.delete(key)
    // The garbage collector: objects owned by the pod go with it.
    for (const [secretKey, secret] of secrets) {
      if ((secret.metadata.ownerReferences ?? []).some((owner: Json) => owner.uid === record.pod.metadata.uid)) secrets.delete(secretKey)
    }
  }

  // ---- the kubelet ----
  const schedule = (key: string) => {
    const record = records.get(key)
    if (!record || closed) return
    const pod = record.pod
    const image: string = pod.spec.containers[0].image
    const behaviour = behaviours[image] ?? 'run'
    if (behaviour === 'unschedulable') {
      setCondition(pod, 'PodScheduled', 'False', { reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.' })
      bump(pod)
      return
    }
    setCondition(pod, 'PodScheduled', 'True')
    const node = options.nodes?.[placed++ % options.nodes.length]
    pod.spec.nodeName = node?.name ?? 'fake-node-1'
    pod.status.hostIP = node?.address ?? '127.0.0.1'
    pod.status.startTime = now()
    setCondition(pod, 'Initialized', 'True')
    setCondition(pod, 'Ready', 'False', { reason: 'ContainersNotReady', message: `containers with unready status: [${pod.spec.containers[0].name}]` })
    if (behaviour === 'image-pull-backoff') {
      containerStatus(pod, { waiting: { reason: 'ErrImagePull', message: `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/${image}": not found` } })
      bump(pod)
      record.timers.push(setTimeout(() => {
        containerStatus(pod, { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } })
        bump(pod)
      }, 100))
      return
    }
    if (behaviour === 'invalid-image-name') {
      containerStatus(pod, { waiting: { reason: 'InvalidImageName', message: `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format` } })
      bump(pod)
      return
    }
    if (behaviour === 'config-error') {
      containerStatus(pod, { waiting: { reason: 'CreateContainerConfigError', message: 'secret "tsflow-missing" not found' } })
      bump(pod)
      return
    }
    containerStatus(pod, { waiting: { reason: 'ContainerCreating' } })
    bump(pod)
    mountThenStart(key, behaviour)
  }

  // Like the kubelet, retry mounting until every Secret a volume names exists.
  const mountThenStart = (key: string, behaviour: Behaviour) => {
    const record = records.get(key)
    if (!record || closed) return
    const missing = (record.pod.spec.volumes ?? []).filter((v: Json) => v.secret && !secrets.has(`${record.pod.metadata.namespace}/${v.secret.secretName}`))
    if (missing.length > 0) {
      record.timers.push(setTimeout(() => mountThenStart(key, behaviour), 25))
      return
    }
    start(key, behaviour)
  }

  /**
   * Secret volumes: the items are written to a staging directory with the volume's mode and
   * bind-mounted read-only over the mount path in a private mount namespace of the container's
   * process, so the container sees the Secret's files there and nothing of the host's directory.
   */
  const secretMounts = (pod: Json): string[] => {
    const mounts: string[] = []
    const volumes: Json[] = pod.spec.volumes ?? []
    for (const mount of pod.spec.containers[0].volumeMounts ?? []) {
      const volume = volumes.find((v) => v.name === mount.name)
      if (!volume?.secret) continue
      const secret = secrets.get(`${pod.metadata.namespace}/${volume.secret.secretName}`)!
      const staged = join(root, 'pods', pod.metadata.name, 'volumes', volume.name)
      mkdirSync(staged, { recursive: true })
      const items: Json[] = volume.secret.items ?? Object.keys(secret.data ?? {}).map((k) => ({ key: k, path: k }))
      for (const item of items) {
        const file = join(staged, item.path)
        writeFileSync(file, Buffer.from(secret.data[item.key], 'base64'), { mode: item.mode ?? volume.secret.defaultMode ?? 0o644 })
        chmodSync(file, item.mode ?? volume.secret.defaultMode ?? 0o644)
      }
      const q = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`
      mounts.push(`mkdir -p ${q(mount.mountPath)} && mount --bind ${q(staged)} ${q(mount.mountPath)} && mount -o remount,bind,ro ${q(mount.mountPath)}`)
    }
    return mounts
  }

  const start = (key: string, behaviour: Behaviour) => {
    const record = records.get(key)!
    const pod = record.pod
    const container = pod.spec.containers[0]
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOSTNAME: pod.metadata.name,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(port()),
    }
    for (const entry of container.env ?? []) env[entry.name] = entry.value ?? ''
    let argv: string[] = [...(container.command ?? []), ...(container.args ?? [])]
    const mounts = secretMounts(pod)
    if (mounts.length > 0) {
      if (!mountNamespaces) {
        containerStatus(pod, { waiting: { reason: 'CreateContainerError', message: 'fake kubelet: Secret volumes need root and unshare(1) here' } })
        bump(pod)
        return
      }
      // unshare execs bash, which execs the container command: the pid stays the container's.
      argv = ['unshare', '--mount', '--propagation', 'private', '--', 'bash', '-c', `${mounts.join(' && ')} && exec "$@"`, 'tsflow-kubelet', ...argv]
    }
    // On a netns node: enter its network namespace (ip execs the command, so the pid stays).
    if (options.nodes) argv = ['ip', 'netns', 'exec', pod.spec.nodeName, ...argv]
    const workdir = join(root, 'pods', pod.metadata.name)
    mkdirSync(workdir, { recursive: true })
    const log = openSync(record.logPath, 'a')
    let child: ChildProcess
    try {
      child = spawn(argv[0]!, argv.slice(1), { cwd: container.workingDir ?? workdir, env, detached: true, stdio: ['ignore', log, log] })
    } finally {
      closeSync(log)
    }
    record.process = child
    child.once('error', (error) => {
      containerStatus(pod, { waiting: { reason: 'RunContainerError', message: `failed to start container: ${error.message}` } })
      bump(pod)
    })
    child.once('spawn', () => {
      record.pgid = child.pid
      pod.status.phase = 'Running'
      pod.status.podIP = pod.status.hostIP
      pod.status.podIPs = [{ ip: pod.status.hostIP }]
      const startedAt = now()
      containerStatus(pod, { running: { startedAt } }, { containerID: `containerd://${randomUUID().replace(/-/g, '')}` })
      setCondition(pod, 'Ready', 'True')
      bump(pod)
      if (behaviour === 'oom-killed') {
        // What the kernel's OOM killer does to a container over its memory limit.
        record.timers.push(setTimeout(() => killGroup(record, 'SIGKILL'), 200))
      } else if (behaviour === 'evicted') {
        record.timers.push(setTimeout(() => evict(key), 200))
      }
      if (typeof pod.spec.activeDeadlineSeconds === 'number') {
        record.timers.push(setTimeout(() => deadline(key), pod.spec.activeDeadlineSeconds * 1000))
      }
    })
    child.once('exit', (code, signal) => void exited(key, code, signal, behaviour))
  }

  const killGroup = (record: PodRecord, signal: NodeJS.Signals) => {
    if (record.pgid === undefined) return
    try {
      process.kill(-record.pgid, signal)
    } catch {
      // the group is empty
    }
  }
  // Zombies do not count: their parent is gone and init may reap them only a second later.
  const groupEmpty = (pgid: number) => {
    try {
      process.kill(-pgid, 0)
    } catch {
      return true
    }
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry)) continue
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        if (Number(pgrp) === pgid && state !== 'Z') return false
      } catch {
        // exited while we looked
      }
    }
    return true
  }

  const evict = (key: string) => {
    const record = records.get(key)
    if (!record) return
    record.pod.status.reason = 'Evicted'
    record.pod.status.message = 'The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. Container tsflow-block was using 2097152Ki, request is 0, has larger consumption of memory.'
    killGroup(record, 'SIGTERM')
    record.timers.push(setTimeout(() => killGroup(record, 'SIGKILL'), 1000))
  }
  const deadline = (key: string) => {
    const record = records.get(key)
    if (!record) return
    record.pod.status.reason = 'DeadlineExceeded'
    record.pod.status.message = `Pod was active on the node longer than the specified deadline`
    killGroup(record, 'SIGTERM')
    record.timers.push(setTimeout(() => killGroup(record, 'SIGKILL'), (record.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000))
  }

  const exited = async (key: string, code: number | null, signal: NodeJS.Signals | null, behaviour: Behaviour) => {
    const record = records.get(key)
    if (!record) return
    // A container ends when its last process does (its cgroup is torn down): wait for the group.
    const pgid = record.pgid
    if (pgid !== undefined) {
      killGroup(record, 'SIGKILL')
      for (let i = 0; i < 200 && !groupEmpty(pgid); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    if (!records.has(key)) return
    const pod = record.pod
    const signals: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }
    const exitCode = code ?? 128 + (signals[signal ?? ''] ?? 0)
    const reason = behaviour === 'oom-killed' ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error'
    const startedAt = pod.status.containerStatuses?.[0]?.state?.running?.startedAt ?? now()
    const terminated: Json = { exitCode, reason, startedAt, finishedAt: now(), containerID: pod.status.containerStatuses?.[0]?.containerID }
    if (exitCode !== 0 && pod.spec.containers[0].terminationMessagePolicy === 'FallbackToLogsOnError') {
      // The kubelet's fallback: the last 80 lines of the log, at most 2048 bytes.
      const text = readFileSync(record.logPath, 'utf8')
      const tail = text.split('\n').slice(-81).join('\n')
      if (tail.trim() !== '') terminated.message = tail.slice(-2048)
    }
    if (behaviour === 'crash-loop' && exitCode !== 0 && !record.deleting) {
      // As with restartPolicy Always: the kubelet backs off before restarting the container.
      containerStatus(pod, { waiting: { reason: 'CrashLoopBackOff', message: `back-off 10s restarting failed container=${pod.spec.containers[0].name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})` } }, {
        lastState: { terminated },
        restartCount: 1,
      })
      bump(pod)
      return
    }
    containerStatus(pod, { terminated })
    pod.status.phase = exitCode === 0 && !pod.status.reason ? 'Succeeded' : 'Failed'
    setCondition(pod, 'Ready', 'False', { reason: 'PodCompleted' })
    bump(pod)
    record.process = undefined
    if (record.deleting) remove(key)
  }

  const deletePod = (key: string, graceSeconds: number | undefined): Json | undefined => {
    const record = records.get(key)
    if (!record) return undefined
    const pod = record.pod
    const grace = graceSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30
    pod.metadata.deletionTimestamp = now()
    pod.metadata.deletionGracePeriodSeconds = grace
    bump(pod)
    const snapshot = structuredClone(pod)
    if (record.process && record.process.exitCode === null && record.process.signalCode === null) {
      record.deleting = true
      killGroup(record, 'SIGTERM')
      record.timers.push(setTimeout(() => killGroup(record, 'SIGKILL'), grace * 1000))
    } else {
      remove(key) // never started or already ended: nothing to stop
    }
    return snapshot
  }

  // ---- the API server ----
  const port = () => (server.address() as AddressInfo).port
  const send = (res: ServerResponse, code: number, body: Json) => {
    res.writeHead(code, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    requests.push(`${req.method} ${url.pathname}${url.search}`)
    if (options.hang) {
      hanging.add(res)
      return
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'))
    const secret = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/)
    if (secret) return secretRequest(req, res, decodeURIComponent(secret[1]!), secret[2] === undefined ? undefined : decodeURIComponent(secret[2]), body)
    const m = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/)
    if (!m) return send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'))
    const namespace = decodeURIComponent(m[1]!)
    const name = m[2] === undefined ? undefined : decodeURIComponent(m[2])
    if (!namespaces.has(namespace)) return send(res, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' }))
    const key = (n: string) => `${namespace}/${n}`
    const selector = url.searchParams.get('labelSelector')
    const grace = url.searchParams.has('gracePeriodSeconds') ? Number(url.searchParams.get('gracePeriodSeconds')) : undefined

    if (req.method === 'POST' && !name) return create(res, namespace, body)
    if (req.method === 'GET' && name) {
      const record = records.get(key(name))
      return record ? send(res, 200, record.pod) : send(res, 404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }))
    }
    if (req.method === 'GET') {
      const items = [...records.entries()].filter(([k, r]) => k.startsWith(`${namespace}/`) && matches(selector, r.pod.metadata.labels)).map(([, r]) => r.pod)
      return send(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items })
    }
    if (req.method === 'DELETE' && name) {
      const deleted = deletePod(key(name), grace)
      return deleted ? send(res, 200, deleted) : send(res, 404, status(404, 'NotFound', `pods "${name}" not found`, { name, kind: 'pods' }))
    }
    if (req.method === 'DELETE') {
      const keys = [...records.entries()].filter(([k, r]) => k.startsWith(`${namespace}/`) && matches(selector, r.pod.metadata.labels)).map(([k]) => k)
      const items = keys.map((k) => deletePod(k, grace)).filter((pod) => pod !== undefined)
      return send(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items })
    }
    return send(res, 405, status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`))
  }

  const secretRequest = (req: IncomingMessage, res: ServerResponse, namespace: string, name: string | undefined, body: string) => {
    if (!namespaces.has(namespace)) return send(res, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' }))
    if (req.method === 'POST' && !name) {
      const secret: Json = JSON.parse(body)
      const secretName: string = secret?.metadata?.name
      if (secret?.kind !== 'Secret' || typeof secretName !== 'string') return send(res, 400, status(400, 'BadRequest', 'the object provided is unrecognized (must be of type Secret)'))
      const bad = Object.keys(secret.data ?? {}).find((k) => !/^[-._a-zA-Z0-9]+$/.test(k))
      if (bad !== undefined) return send(res, 422, status(422, 'Invalid', `Secret "${secretName}" is invalid: data[${bad}]: Invalid value: "${bad}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`, { name: secretName, kind: 'Secret' }))
      if (secrets.has(`${namespace}/${secretName}`)) return send(res, 409, status(409, 'AlreadyExists', `secrets "${secretName}" already exists`, { name: secretName, kind: 'secrets' }))
      secret.metadata = { ...secret.metadata, namespace, uid: randomUUID(), creationTimestamp: now(), resourceVersion: String(++resourceVersion) }
      secrets.set(`${namespace}/${secretName}`, secret)
      return send(res, 201, secret)
    }
    const found = name === undefined ? undefined : secrets.get(`${namespace}/${name}`)
    if (req.method === 'GET' && name) return found ? send(res, 200, found) : send(res, 404, status(404, 'NotFound', `secrets "${name}" not found`, { name, kind: 'secrets' }))
    if (req.method === 'DELETE' && name) {
      if (!found) return send(res, 404, status(404, 'NotFound', `secrets "${name}" not found`, { name, kind: 'secrets' }))
      secrets.delete(`${namespace}/${name}`)
      return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: 'secrets', uid: found.metadata.uid } })
    }
    return send(res, 405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'))
  }

  const create = (res: ServerResponse, namespace: string, body: string) => {
    let pod: Json
    try {
      pod = JSON.parse(body)
    } catch (error) {
      return send(res, 400, status(400, 'BadRequest', `the object provided is unrecognized: ${(error as Error).message}`))
    }
    const name: unknown = pod?.metadata?.name
    const causes: Json[] = []
    if (pod?.kind !== 'Pod' || pod?.apiVersion !== 'v1') return send(res, 400, status(400, 'BadRequest', `the object provided is unrecognized (must be of type Pod)`))
    if (pod.metadata.namespace !== undefined && pod.metadata.namespace !== namespace) {
      return send(res, 400, status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'))
    }
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
      causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`, field: 'metadata.name' })
    }
    const containers: Json[] = pod.spec?.containers ?? []
    if (containers.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.containers' })
    containers.forEach((c, i) => {
      if (!c.image) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: `spec.containers[${i}].image` })
    })
    if (pod.spec?.restartPolicy && !['Always', 'OnFailure', 'Never'].includes(pod.spec.restartPolicy)) {
      causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: "${pod.spec.restartPolicy}"`, field: 'spec.restartPolicy' })
    }
    containers.forEach((c, i) => {
      for (const resource of ['cpu', 'memory']) {
        const request = c.resources?.requests?.[resource]
        const limit = c.resources?.limits?.[resource]
        if (request !== undefined && limit !== undefined && quantity(request) > quantity(limit)) {
          causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: "${request}": must be less than or equal to ${resource} limit of ${limit}`, field: `spec.containers[${i}].resources.requests` })
        }
      }
    })
    if (causes.length > 0) {
      const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ')
      return send(res, 422, status(422, 'Invalid', `Pod "${String(name)}" is invalid: ${text}`, { name, kind: 'Pod', causes }))
    }
    const key = `${namespace}/${name}`
    if (options.cpuQuota !== undefined) {
      const cpu = (pod: Json) => quantity(pod.spec?.containers?.[0]?.resources?.limits?.cpu ?? '0')
      const used = [...records.values()].filter((r) => r.pod.metadata.namespace === namespace && !['Succeeded', 'Failed'].includes(r.pod.status.phase)).reduce((sum, r) => sum + cpu(r.pod), 0)
      if (used + cpu(pod) > options.cpuQuota) {
        return send(res, 403, status(403, 'Forbidden', `pods "${String(name)}" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=${cpu(pod)}, used: limits.cpu=${used}, limited: limits.cpu=${options.cpuQuota}`, { name, kind: 'pods' }))
      }
    }
    if (records.has(key)) return send(res, 409, status(409, 'AlreadyExists', `pods "${String(name)}" already exists`, { name, kind: 'pods' }))
    pod.metadata = { ...pod.metadata, namespace, uid: randomUUID(), creationTimestamp: now(), resourceVersion: String(++resourceVersion) }
    pod.spec = { restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler', ...pod.spec }
    const limits = containers[0]?.resources?.limits ?? {}
    const requests = containers[0]?.resources?.requests ?? {}
    const guaranteed = Object.keys(limits).length > 0 && ['cpu', 'memory'].every((r) => limits[r] !== undefined && (requests[r] ?? limits[r]) === limits[r])
    pod.status = { phase: 'Pending', qosClass: guaranteed ? 'Guaranteed' : Object.keys({ ...limits, ...requests }).length > 0 ? 'Burstable' : 'BestEffort' }
    records.set(key, { pod, logPath: join(root, `${namespace}_${name}.log`), timers: [] })
    const record = records.get(key)!
    // The scheduler and kubelet act after the API has answered, as they do in a cluster.
    record.timers.push(setTimeout(() => schedule(key), 20))
    send(res, 201, pod)
  }

  const tls = selfSigned()
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      try {
        handle(req, res, body)
      } catch (error) {
        send(res, 500, status(500, 'InternalError', `fake API server: ${(error as Error).stack}`))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `https://127.0.0.1:${port()}`
  const kubeconfig = join(root, 'kubeconfig')
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'certificate-authority-data': Buffer.from(tls.cert).toString('base64') } }],
      users: [{ name: 'tsflow-test', user: { token: TOKEN } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'tsflow-test', namespace: [...namespaces][0] } }],
      'current-context': 'fake',
    }),
  )

  return {
    url,
    kubeconfig,
    requests,
    pods: () => [...records.values()].map((r) => r.pod),
    pod: (name, namespace = 'default') => records.get(`${namespace}/${name}`)?.pod,
    secret: (name, namespace = 'default') => secrets.get(`${namespace}/${name}`),
    deleteOutOfBand(name, namespace = 'default') {
      const record = records.get(`${namespace}/${name}`)
      if (!record) return
      killGroup(record, 'SIGKILL')
      remove(`${namespace}/${name}`)
    },
    async close() {
      closed = true
      for (const res of hanging) res.destroy()
      for (const key of [...records.keys()]) {
        const record = records.get(key)!
        killGroup(record, 'SIGKILL')
        remove(key)
      }
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(root, { recursive: true, force: true })
    },
  }
}
