import { checkBlockId, checkEnvNames, launchedCommand } from '../submit-checks.js'
import { BlockOptionsView } from '../block-options-view.js'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join as joinPath } from 'node:path'
import { randomBytes } from 'node:crypto'
// Types only: the client (about half a second to import) is loaded by init(), so importing
// tsflow, in the workflow or in any worker, does not pay for it.
import type { CoreV1Api } from '@kubernetes/client-node'
type KubernetesClient = typeof import('@kubernetes/client-node')
import { ConfigError, ProviderError } from '../../errors.js'
import { anyOf, arrayOf, join, literal, number, object, oneOf, optional, positiveNumber, recordOf, string, type Check } from '../../util/schema.js'
import { SingleNodeLauncher } from '../../launchers/launchers.js'
import { exportLines, isEnvName } from '../../launchers/shell.js'
import { silentLogger, type Logger } from '../../util/logger.js'
import { isFinalBlockState, type BlockStatus, type ExecutionProvider, type ProviderContext, type SubmitOptions } from '../base.js'
import { blockOptionShape, resolveBlockOptions, type BlockOptions, type ResolvedBlockOptions } from '../options.js'
import { podManifest, podName, podScript, secretManifest, shippedFiles, type Quantities } from './pod.js'
import { podToBlockStatus, RUN_LABEL, type PodLike } from './states.js'

export interface KubernetesProviderOptions extends BlockOptions {
  /** Only for plain-object configs: `{ type: 'kubernetes', ... }`. */
  type?: 'kubernetes'
  /** Container image of the block's pod; it must have bash and the executor's manager command. */
  image: string
  /** Namespace of the pods. Default: the kubeconfig context's namespace, else 'default'. */
  namespace?: string
  /** Extra labels on every pod (tsflow-block and tsflow-run are always set). */
  labels?: Record<string, string>
  /** Resource requests as Kubernetes quantities, e.g. { cpu: '500m', memory: '2Gi' }. */
  requests?: { cpu?: string | number; memory?: string }
  /** Resource limits as Kubernetes quantities. */
  limits?: { cpu?: string | number; memory?: string }
  /** Environment of the block's container (TSFLOW_BLOCK_ID and the executor's variables are added). */
  env?: Record<string, string>
  serviceAccount?: string
  /** Names of Secrets to pull the image with. */
  imagePullSecrets?: string[]
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  /** Shell lines run in the container before workerInit and the command; a failing line fails the block. */
  initCommand?: string | string[]
  /** A kubeconfig file, or 'in-cluster' (the pod's service account). Default: $KUBECONFIG, ~/.kube/config, or in-cluster. */
  kubeconfig?: string
  /** The kubeconfig context to use. Default: its current context. */
  context?: string
  /** Start of every pod name (default 'tsflow'); names are <prefix>-<run id>-<block id>. */
  podNamePrefix?: string
  /** Seconds a cancelled pod gets between SIGTERM and SIGKILL (default 10). */
  gracePeriodSeconds?: number
}

const quantity: Check<string> = anyOf(
  'a Kubernetes quantity (e.g. "500m", "2", "4Gi") or a number',
  (value, path) => {
    const text = string(value, path)
    if (!/^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$/.test(text)) throw new ConfigError(path, 'is not a quantity')
    return text
  },
  (value, path) => String(positiveNumber(value, path)),
)
const quantities = object({ cpu: quantity, memory: quantity })
const shellLines: Check<string> = anyOf(
  'a string or an array of strings (shell lines)',
  (value, path) => (value === '' ? '' : string(value, path)),
  (value, path) => arrayOf(string)(value, path).join('\n'),
)
const labelKey = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const labelValue = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/
const labels: Check<Record<string, string>> = (value, path) => {
  const record = recordOf((inner, at) => (typeof inner === 'string' ? inner : string(inner, at)))(value, path)
  for (const [key, text] of Object.entries(record)) {
    if (!labelKey.test(key)) throw new ConfigError(join(path, key), 'is not a valid label key (name or prefix/name, alphanumerics, - _ .)')
    if (!labelValue.test(text)) throw new ConfigError(join(path, key), `is ${JSON.stringify(text)}, not a valid label value (up to 63 alphanumerics, - _ ., alphanumeric at both ends)`)
  }
  return record
}
const envRecord: Check<Record<string, string>> = (value, path) => {
  const record = recordOf((inner, at) => (typeof inner === 'string' ? inner : string(inner, at)))(value, path)
  for (const key of Object.keys(record)) if (!isEnvName(key)) throw new ConfigError(join(path, key), 'is not a valid environment variable name')
  return record
}
const dnsName: Check<string> = (value, path) => {
  const text = string(value, path)
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(text)) throw new ConfigError(path, `is ${JSON.stringify(text)}, not a valid Kubernetes name (lower-case alphanumerics and -, at most 63)`)
  return text
}

const schema = object({
  type: optional(literal('kubernetes' as const)),
  ...blockOptionShape,
  image: string,
  namespace: dnsName,
  labels,
  requests: quantities,
  limits: quantities,
  env: envRecord,
  serviceAccount: dnsName,
  imagePullSecrets: arrayOf(dnsName),
  imagePullPolicy: oneOf('Always', 'IfNotPresent', 'Never'),
  initCommand: shellLines,
  kubeconfig: string,
  context: string,
  podNamePrefix: dnsName,
  gracePeriodSeconds: number(1, 3600, 'a number of seconds from 1 to 3600'),
})

const DEFAULT_GRACE_SECONDS = 10
const SHUTDOWN_POLL_MS = 200

interface PodBlock {
  blockId: string
  jobId: string
  cancelRequested: boolean
  /** final statuses are kept for ever: a pod deleted later must not change what happened */
  final?: BlockStatus
  /** a failed pod Kubernetes would keep retrying (image pull, crash loop) is deleted once */
  deleteRequested: boolean
}

interface ResolvedK8s {
  image: string
  namespace: string | undefined
  labels: Record<string, string>
  requests: Quantities
  limits: Quantities
  env: Record<string, string>
  serviceAccount: string | undefined
  imagePullSecrets: string[]
  imagePullPolicy: string | undefined
  initCommand: string
  kubeconfig: string | undefined
  context: string | undefined
  podNamePrefix: string
  gracePeriodSeconds: number
}

/**
 * Runs each block as one pod (Kubernetes has no multi-node jobs, so nodesPerBlock must be 1;
 * more capacity means more blocks). The pod's one container runs `bash -c <script>`: the
 * initCommand and workerInit, then the launched command. Statuses come from one list request per
 * poll (pods labelled with this provider's run id) and Kubernetes' own reasons become the
 * messages. Every API request is bounded by cmdTimeoutMs.
 */
export class KubernetesProvider extends BlockOptionsView implements ExecutionProvider {
  readonly label = 'kubernetes'
  protected options: ResolvedBlockOptions
  private k8s: ResolvedK8s | undefined
  private validated = false
  private context: ProviderContext | undefined
  private logger: Logger = silentLogger
  private api: CoreV1Api | undefined
  private client: KubernetesClient | undefined
  private server = '(no API server yet)'
  private namespace = 'default'
  private closed = false
  private submitted = false
  /** Labels this provider's pods as one run, so one list request finds all of them. */
  readonly runId = randomBytes(4).toString('hex')
  private readonly blocks = new Map<string, PodBlock>()

  constructor(private readonly raw: KubernetesProviderOptions) {
    super()
    this.options = resolveBlockOptions({}, '', { launcher: () => new SingleNodeLauncher() })
  }

  validate(path: string): void {
    const o = schema(this.raw, path)
    this.options = resolveBlockOptions(o, path, { launcher: () => new SingleNodeLauncher() })
    if (this.options.nodesPerBlock !== 1) {
      throw new ConfigError(
        join(path, 'nodesPerBlock'),
        `is ${this.options.nodesPerBlock}, but a Kubernetes block is one pod on one node; ask for more blocks (maxBlocks) instead`,
      )
    }
    // Pods have no directive lines and no whole-node request: say so rather than ignore them.
    if (this.options.schedulerOptions !== '') {
      throw new ConfigError(join(path, 'schedulerOptions'), 'has no meaning for Kubernetes (pods have no scheduler directives); use labels, requests, limits or serviceAccount')
    }
    if (this.options.exclusive) {
      throw new ConfigError(join(path, 'exclusive'), 'is not supported by the Kubernetes provider; request a whole node through requests/limits (coresPerNode, memPerNode) instead')
    }
    if (o.image === undefined) throw new ConfigError(join(path, 'image'), 'is required: the container image the block pods run (it needs bash and tsflow)')
    const requests: Quantities = {}
    const limits: Quantities = {}
    // The manager sizes its worker pool from what it sees; a limit equal to the request keeps the
    // pod's share fixed (Guaranteed QoS) so that count stays right.
    if (this.options.coresPerNode !== undefined) requests.cpu = limits.cpu = String(this.options.coresPerNode)
    if (this.options.memPerNode !== undefined) requests.memory = limits.memory = `${Math.ceil(this.options.memPerNode * 1024)}Mi`
    Object.assign(requests, o.requests)
    Object.assign(limits, o.limits)
    this.k8s = {
      image: o.image,
      namespace: o.namespace,
      labels: o.labels ?? {},
      requests,
      limits,
      env: o.env ?? {},
      serviceAccount: o.serviceAccount,
      imagePullSecrets: o.imagePullSecrets ?? [],
      imagePullPolicy: o.imagePullPolicy,
      initCommand: o.initCommand ?? '',
      kubeconfig: o.kubeconfig,
      context: o.context,
      podNamePrefix: o.podNamePrefix ?? 'tsflow',
      gracePeriodSeconds: o.gracePeriodSeconds ?? DEFAULT_GRACE_SECONDS,
    }
    this.validated = true
  }

  async init(context: ProviderContext): Promise<void> {
    if (this.closed) throw new ProviderError(this.label, 'init() was called after shutdown(); create a new provider')
    if (!this.validated) this.validate('provider')
    const k8s = this.k8s!
    try {
      mkdirSync(context.scriptDir, { recursive: true })
    } catch (error) {
      throw new ProviderError(this.label, `cannot create the script directory ${context.scriptDir}: ${(error as Error).message}`, { cause: error })
    }
    let client: KubernetesClient
    try {
      client = await import('@kubernetes/client-node')
    } catch (error) {
      throw new ProviderError(this.label, `cannot load @kubernetes/client-node (npm install @kubernetes/client-node@^1): ${(error as Error).message}`, { cause: error })
    }
    const config = new client.KubeConfig()
    const source = k8s.kubeconfig === 'in-cluster' ? 'the in-cluster service account' : k8s.kubeconfig ? `kubeconfig ${k8s.kubeconfig}` : 'the default kubeconfig ($KUBECONFIG, ~/.kube/config or in-cluster)'
    try {
      if (k8s.kubeconfig === 'in-cluster') config.loadFromCluster()
      else if (k8s.kubeconfig) config.loadFromFile(k8s.kubeconfig)
      else config.loadFromDefault()
      if (k8s.context) config.setCurrentContext(k8s.context)
    } catch (error) {
      throw new ProviderError(this.label, `cannot load ${source}: ${(error as Error).message}`, { cause: error })
    }
    const cluster = config.getCurrentCluster()
    if (!cluster) throw new ProviderError(this.label, `${source} has no cluster for context ${JSON.stringify(config.getCurrentContext())}`)
    // The client's last resort when it finds no configuration at all: say that instead of
    // failing later on a connection to a server that was never configured.
    if (!k8s.kubeconfig && config.getCurrentContext() === 'loaded-context' && cluster.server === 'http://localhost:8080') {
      throw new ProviderError(this.label, 'found no Kubernetes configuration: no $KUBECONFIG, no ~/.kube/config, and not running in a pod; set the kubeconfig option')
    }
    this.server = cluster.server
    this.namespace = k8s.namespace ?? config.getContextObject(config.getCurrentContext())?.namespace ?? 'default'
    this.api = config.makeApiClient(client.CoreV1Api)
    this.client = client
    this.context = context
    this.logger = context.logger
    this.logger.info(`kubernetes: API server ${this.server}, namespace ${this.namespace}, run ${this.runId}`)
  }

  async submit(command: string, blockId: string, options: SubmitOptions = {}): Promise<string> {
    const context = this.ready()
    const k8s = this.k8s!
    checkBlockId(this.label, blockId)
    const name = podName(k8s.podNamePrefix, this.runId, blockId)
    const existing = this.blocks.get(name)
    if (existing && existing.blockId !== blockId) {
      throw new ProviderError(this.label, `block ids ${JSON.stringify(existing.blockId)} and ${JSON.stringify(blockId)} both become pod name ${name} (pod names are lower case, [a-z0-9-]); use distinct block ids`)
    }
    if (existing && !existing.final) throw new ProviderError(this.label, `block ${blockId} is already running (pod ${name}); block ids must be unique`)
    const walltime = this.options.walltimeSeconds
    const env: Record<string, string> = {
      ...k8s.env,
      TSFLOW_BLOCK_ID: blockId,
      // Managers read the block's end time from these, as on the batch schedulers.
      ...(walltime !== undefined ? { TSFLOW_BLOCK_WALLTIME_S: String(walltime) } : {}),
      ...options.env,
    }
    checkEnvNames(this.label, blockId, env)
    const launched = launchedCommand(this.label, blockId, this.options.launcher, command, options.tasksPerNode ?? 1, 1)
    const files = shippedFiles(options.files)
    const badPath = files.find((file) => !file.path.startsWith('/') || file.path.endsWith('/'))
    if (badPath) throw new ProviderError(this.label, `file ${JSON.stringify(badPath.path)} for block ${blockId} must be an absolute file path`)
    const init = [k8s.initCommand, this.options.workerInit].filter((text) => text.trim() !== '').join('\n')
    const script = podScript({ blockId, init, launched, launcherType: this.options.launcher.type })
    const manifest = podManifest({
      name,
      namespace: this.namespace,
      blockId,
      runId: this.runId,
      image: k8s.image,
      ...(k8s.imagePullPolicy ? { imagePullPolicy: k8s.imagePullPolicy } : {}),
      script,
      env,
      labels: k8s.labels,
      requests: k8s.requests,
      limits: k8s.limits,
      ...(k8s.serviceAccount ? { serviceAccount: k8s.serviceAccount } : {}),
      imagePullSecrets: k8s.imagePullSecrets,
      terminationGracePeriodSeconds: k8s.gracePeriodSeconds,
      // The walltime is the pod's deadline: Kubernetes stops it then (DeadlineExceeded).
      ...(walltime !== undefined ? { activeDeadlineSeconds: walltime } : {}),
      files,
    })
    // The script and the manifest go to the run directory: `kubectl create -f block-<id>.pod.json`
    // reproduces the block by hand.
    const base = joinPath(context.scriptDir, `block-${blockId}`)
    try {
      // The pod gets its environment from the container spec; the copy here exports it itself,
      // so `bash block-<id>.sh` on a node reproduces the block.
      const header = `#!/usr/bin/env bash\n# tsflow block ${blockId}: the script of pod ${this.namespace}/${name} (manifest: block-${blockId}.pod.json)\n`
      writeFileSync(`${base}.sh`, `${header}${exportLines(env)}\n${script}`, { mode: 0o700 })
      writeFileSync(`${base}.pod.json`, `${JSON.stringify(manifest, null, 2)}\n`)
    } catch (error) {
      throw new ProviderError(this.label, `cannot write the script of block ${blockId} to ${base}.sh: ${(error as Error).message}`, { cause: error })
    }
    // From here a pod may exist even if the request fails (an answer lost to the timeout):
    // shutdown() deletes by label, so it removes such a pod too.
    this.submitted = true
    const created = await this.request(`creating pod ${name} for block ${blockId}`, (api, options) =>
      api.createNamespacedPod({ namespace: this.namespace, body: manifest as never }, options),
    )
    const block: PodBlock = { blockId, jobId: name, cancelRequested: false, deleteRequested: false }
    this.blocks.set(name, block)
    if (files.length > 0) {
      // Created after the pod so it can name the pod as its owner; the kubelet waits for it
      // before starting the container (the volume cannot be mounted until then).
      const secret = secretManifest({ name, namespace: this.namespace, runId: this.runId, blockId, podUid: created.metadata?.uid ?? '', files })
      try {
        await this.request(`creating secret ${name} with the files of block ${blockId}`, (api, options) =>
          api.createNamespacedSecret({ namespace: this.namespace, body: secret as never }, options),
        )
      } catch (error) {
        block.cancelRequested = true
        await this.deletePod(block).catch(() => undefined)
        throw error
      }
    }
    if (this.closed) {
      // shutdown() ran while the pod was being created and could not see it.
      block.cancelRequested = true
      await this.deletePod(block).catch(() => undefined)
      throw new ProviderError(this.label, `block ${blockId} was started during shutdown() and its pod ${name} has been deleted`)
    }
    this.logger.info(`block ${blockId} submitted as pod ${this.namespace}/${name}`)
    return name
  }

  async status(jobIds: readonly string[]): Promise<BlockStatus[]> {
    const open = jobIds.map((id) => this.blocks.get(id)).filter((block): block is PodBlock => block !== undefined && !block.final)
    let pods: Map<string, PodLike> | undefined
    let failure: string | undefined
    if (open.length > 0) {
      try {
        pods = await this.listPods()
      } catch (error) {
        failure = (error as Error).message
      }
    }
    return jobIds.map((jobId) => {
      const block = this.blocks.get(jobId)
      if (!block) return { blockId: '', jobId, state: 'unknown', message: `pod ${jobId} was not created by this kubernetes provider (run ${this.runId})` }
      if (block.final) return block.final
      // A failed query says nothing about the pod: unknown, never completed or failed.
      if (!pods) return { blockId: block.blockId, jobId, state: 'unknown', message: failure ?? 'no status yet' }
      return this.statusOf(block, pods.get(jobId))
    })
  }

  async cancel(jobIds: readonly string[]): Promise<void> {
    const targets = jobIds.map((id) => this.blocks.get(id)).filter((block): block is PodBlock => block !== undefined && !block.final)
    for (const block of targets) block.cancelRequested = true
    const results = await Promise.allSettled(targets.map((block) => this.deletePod(block)))
    const failed = results.flatMap((result) => (result.status === 'rejected' ? [(result.reason as Error).message] : []))
    if (failed.length > 0) throw new ProviderError(this.label, `cancel failed for ${failed.length} pod(s): ${failed.join('; ')}`)
  }

  /**
   * Deletes every pod of this run (finished ones too: they count against the namespace's pod
   * quota, and their messages are already kept here), then waits until they are gone. Bounded
   * by cmdTimeoutMs; never rejects.
   */
  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.api || !this.submitted) return
    const deadline = Date.now() + this.options.cmdTimeoutMs
    for (const block of this.blocks.values()) if (!block.final) block.cancelRequested = true
    // Every request gets only the time left, so the whole shutdown stays within cmdTimeoutMs.
    const left = () => Math.max(1, deadline - Date.now())
    try {
      await this.request(
        `deleting the pods of run ${this.runId}`,
        (api, options) =>
          api.deleteCollectionNamespacedPod({ namespace: this.namespace, labelSelector: `${RUN_LABEL}=${this.runId}`, gracePeriodSeconds: this.k8s!.gracePeriodSeconds }, options),
        left(),
      )
      let remaining = [...(await this.listPods(left())).keys()]
      while (remaining.length > 0 && Date.now() + SHUTDOWN_POLL_MS < deadline) {
        await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS))
        remaining = [...(await this.listPods(left())).keys()]
      }
      if (remaining.length > 0) this.logger.warn(`shutdown: pod(s) ${remaining.join(', ')} were still terminating after cmdTimeoutMs (${this.options.cmdTimeoutMs} ms); Kubernetes will finish deleting them`)
    } catch (error) {
      this.logger.error(`shutdown: could not delete the pods of run ${this.runId} (labels ${RUN_LABEL}=${this.runId}); delete them with kubectl delete pods -n ${this.namespace} -l ${RUN_LABEL}=${this.runId}`, error)
    }
    for (const block of this.blocks.values()) if (!block.final && block.cancelRequested) block.final = cancelled(block, 'cancelled by shutdown()')
  }

  describe(): Record<string, unknown> {
    const { launcher, workerInit, ...counts } = this.options
    const k8s = this.k8s
    return {
      type: this.label,
      ...counts,
      launcher: launcher.describe(),
      workerInit: workerInit !== '',
      ...(k8s ? { image: k8s.image, namespace: k8s.namespace ?? this.namespace, requests: k8s.requests, limits: k8s.limits } : {}),
    }
  }

  private ready(): ProviderContext {
    if (this.closed) throw new ProviderError(this.label, 'cannot submit a block after shutdown()')
    if (!this.context || !this.api) throw new ProviderError(this.label, 'init({ scriptDir, logger }) must be called before submit()')
    return this.context
  }

  private statusOf(block: PodBlock, pod: PodLike | undefined): BlockStatus {
    if (!pod) {
      if (block.cancelRequested) return (block.final = cancelled(block, `pod ${block.jobId} deleted by cancel()`))
      // Gone without tsflow deleting it: someone ran kubectl delete, or the pod was evicted and
      // garbage-collected. Without evidence the block is not called completed or failed.
      return { blockId: block.blockId, jobId: block.jobId, state: 'unknown', message: `pod ${block.jobId} no longer exists in namespace ${this.namespace} and tsflow did not delete it (deleted by someone else, or evicted and removed)` }
    }
    const status: BlockStatus = { ...podToBlockStatus(pod), blockId: block.blockId, jobId: block.jobId }
    delete (status as { nativeState?: string }).nativeState
    if (block.cancelRequested) {
      if (isFinalBlockState(status.state)) return (block.final = cancelled(block, `pod ${block.jobId} stopped by cancel() (${status.message})`))
      return { ...status, message: `${status.message} (being deleted by cancel())` }
    }
    if (isFinalBlockState(status.state)) {
      block.final = status
      const phase = (pod.status?.phase ?? '') as string
      if (status.state === 'failed' && phase !== 'Failed' && !block.deleteRequested) {
        // ImagePullBackOff, CrashLoopBackOff...: Kubernetes would retry for ever; free the slot.
        block.deleteRequested = true
        this.deletePod(block).catch((error: unknown) => this.logger.warn(`could not delete failed pod ${block.jobId}: ${(error as Error).message}`))
      }
      const log = status.state === 'failed' ? this.logger.warn : this.logger.info
      log.call(this.logger, `block ${block.blockId} ${status.state}: ${status.message ?? ''}`)
    }
    return status
  }

  private async listPods(timeoutMs?: number): Promise<Map<string, PodLike>> {
    const list = await this.request(
      `listing the pods of run ${this.runId}`,
      (api, options) => api.listNamespacedPod({ namespace: this.namespace, labelSelector: `${RUN_LABEL}=${this.runId}` }, options),
      timeoutMs,
    )
    return new Map(list.items.map((pod) => [pod.metadata?.name ?? '', pod as PodLike]))
  }

  private async deletePod(block: PodBlock): Promise<void> {
    try {
      await this.request(`deleting pod ${block.jobId} of block ${block.blockId}`, (api, options) =>
        api.deleteNamespacedPod({ namespace: this.namespace, name: block.jobId, gracePeriodSeconds: this.k8s!.gracePeriodSeconds }, options),
      )
    } catch (error) {
      if ((error as { httpCode?: number }).httpCode === 404) return // already gone
      throw error
    }
  }

  /**
   * One API request bounded by cmdTimeoutMs (the request is aborted, not left running), with
   * failures turned into ProviderErrors that name the request, the server and Kubernetes' reason.
   */
  private async request<T>(what: string, call: (api: CoreV1Api, options: RequestOptions) => Promise<T>, timeoutMs = this.options.cmdTimeoutMs): Promise<T> {
    if (!this.api || !this.client) throw new ProviderError(this.label, 'init() must be called first')
    const { ApiException, Observable } = this.client
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), timeoutMs)
    timer.unref()
    // The request's signal is set by a middleware: the only way the client takes one.
    const options: RequestOptions = {
      middleware: [
        {
          pre: (context) => {
            context.setSignal(controller.signal as never)
            return new Observable(Promise.resolve(context))
          },
          post: (context) => new Observable(Promise.resolve(context)),
        },
      ],
      middlewareMergeStrategy: 'append',
    }
    try {
      return await call(this.api, options)
    } catch (error) {
      if (controller.signal.aborted) {
        throw new ProviderError(this.label, `${what}: the Kubernetes API server ${this.server} did not answer within cmdTimeoutMs (${timeoutMs} ms)`, { cause: error })
      }
      if (error instanceof ApiException) {
        const status = apiStatus(error.body)
        const reason = status ? `${status.reason ?? 'error'}: ${status.message ?? ''}` : String(error.body).slice(0, 500)
        // A 403 is either RBAC ("User ... cannot create resource") or an admission refusal
        // (quota, pod security) whose message already says what to change.
        const rbac = error.code === 403 && / cannot [a-z]+ resource /.test(status?.message ?? '')
        const hint = rbac ? ' (the kubeconfig user or service account needs a Role allowing it: see docs/providers/kubernetes.md)' : error.code === 401 ? ' (the kubeconfig credentials were refused)' : ''
        const wrapped = new ProviderError(this.label, `${what}: the API server ${this.server} answered HTTP ${error.code} ${reason}${hint}`, { cause: error })
        Object.assign(wrapped, { httpCode: error.code })
        throw wrapped
      }
      throw new ProviderError(this.label, `${what}: cannot reach the Kubernetes API server at ${this.server}: ${(error as Error).message}`, { cause: error })
    } finally {
      clearTimeout(timer)
    }
  }
}

type RequestOptions = NonNullable<Parameters<CoreV1Api['listNamespacedPod']>[1]>

function cancelled(block: PodBlock, message: string): BlockStatus {
  return { blockId: block.blockId, jobId: block.jobId, state: 'cancelled', message }
}

/** Kubernetes' Status object in an error body: { kind: 'Status', reason, message, code }. */
function apiStatus(body: unknown): { reason?: string; message?: string } | undefined {
  try {
    const value = typeof body === 'string' ? JSON.parse(body) : body
    return value && typeof value === 'object' && (value as { kind?: string }).kind === 'Status' ? (value as { reason?: string; message?: string }) : undefined
  } catch {
    return undefined
  }
}
