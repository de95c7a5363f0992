// KubernetesProvider against an in-test API server and kubelet (test/helpers/fake-kubernetes.ts):
// the provider conformance suite, each failure state with Kubernetes' reason as the message,
// the pod it creates, API errors and an unreachable or hanging API server. No real cluster runs
// here; what is simulated is listed in docs/providers/kubernetes.md.

import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

import t, { type Test } from 'tap'

import { ConfigError, KubernetesProvider, ProviderError, type BlockStatus } from 'tsflow'
import type { KubernetesProviderOptions } from '../../dist/providers/index.js'
import { silentLogger } from '../../dist/util/logger.js'
import { mountNamespaces, startFakeKubernetes, type Behaviour, type FakeKubernetes } from '../helpers/fake-kubernetes.js'
import { providerConformance } from './conformance.js'
import { tempDir, waitFor } from './helpers.js'

const IMAGE = 'tsflow-test:1'
const behaviours: Record<string, Behaviour> = {
  'tsflow-test:unschedulable': 'unschedulable',
  'tsflow-test:no-such-tag': 'image-pull-backoff',
  'tsflow-test:invalid': 'invalid-image-name',
  'tsflow-test:config-error': 'config-error',
  'tsflow-test:crash-loop': 'crash-loop',
  'tsflow-test:oom': 'oom-killed',
  'tsflow-test:evicted': 'evicted',
}
const fake = await startFakeKubernetes({ behaviours, namespaces: ['default', 'science'] })
t.teardown(() => fake.close())

providerConformance(t, {
  name: 'kubernetes',
  create: (options) => new KubernetesProvider({ image: IMAGE, kubeconfig: fake.kubeconfig, gracePeriodSeconds: 2, ...options } as KubernetesProviderOptions),
  // The fake scheduler finds no node for this image: the pod stays Pending (Unschedulable).
  pendingOptions: { image: 'tsflow-test:unschedulable' },
})

interface K8s {
  provider: KubernetesProvider
  scriptDir: string
  final(jobId: string): Promise<BlockStatus>
  until(jobId: string, accept: (status: BlockStatus) => boolean, what: string): Promise<BlockStatus>
}

async function k8s(t: Test, options: Partial<KubernetesProviderOptions> = {}, server: Pick<FakeKubernetes, 'kubeconfig'> = fake): Promise<K8s> {
  const { dir, remove } = tempDir('k8s')
  const provider = new KubernetesProvider({ image: IMAGE, kubeconfig: server.kubeconfig, maxBlocks: 4, gracePeriodSeconds: 2, ...options })
  t.teardown(async () => {
    await provider.shutdown()
    remove()
  })
  provider.validate('provider')
  const scriptDir = join(dir, 'scripts')
  await provider.init({ scriptDir, logger: silentLogger })
  const until = async (jobId: string, accept: (status: BlockStatus) => boolean, what: string) => {
    let last: BlockStatus | undefined
    await waitFor(async () => accept((last = (await provider.status([jobId]))[0]!)), `${jobId} ${what} (last: ${JSON.stringify(last)})`, 15_000)
    return last!
  }
  return { provider, scriptDir, until, final: (jobId) => until(jobId, (s) => ['completed', 'failed', 'cancelled'].includes(s.state), 'to be final') }
}

t.test('the pod: labels, env, resources, service account, pull secrets, restartPolicy Never, bash -c, written to scriptDir', async (t) => {
  const { provider, scriptDir, final } = await k8s(t, {
    namespace: 'science',
    labels: { team: 'astro' },
    coresPerNode: 2,
    memPerNode: 1.5,
    limits: { cpu: '4' },
    env: { OMP_NUM_THREADS: '2' },
    serviceAccount: 'tsflow-runner',
    imagePullSecrets: ['regcred'],
  })
  const jobId = await provider.submit('echo "$TSFLOW_BLOCK_ID $OMP_NUM_THREADS $EXTRA"', 'b1', { env: { EXTRA: 'x y' } })
  const pod = fake.pod(jobId, 'science')!
  t.ok(pod, 'the pod exists in namespace science')
  t.match(pod.metadata.labels, { team: 'astro', 'tsflow-block': 'b1', 'tsflow-run': provider.runId })
  t.equal(pod.spec.restartPolicy, 'Never')
  t.equal(pod.spec.serviceAccountName, 'tsflow-runner')
  t.same(pod.spec.imagePullSecrets, [{ name: 'regcred' }])
  const container = pod.spec.containers[0]
  t.equal(container.image, IMAGE)
  t.same(container.command.slice(0, 2), ['bash', '-c'])
  t.same(container.resources, { requests: { cpu: '2', memory: '1536Mi' }, limits: { cpu: '4', memory: '1536Mi' } }, 'coresPerNode/memPerNode, limits.cpu overriding')
  t.same(
    Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value])),
    { OMP_NUM_THREADS: '2', TSFLOW_BLOCK_ID: 'b1', EXTRA: 'x y' },
  )
  t.equal(pod.status.qosClass, 'Burstable')
  const status = await final(jobId)
  t.equal(status.state, 'completed', status.message ?? '')
  t.ok(existsSync(join(scriptDir, 'block-b1.sh')), 'the script is in scriptDir')
  t.same(JSON.parse(readFileSync(join(scriptDir, 'block-b1.pod.json'), 'utf8')).spec.containers[0].command[2], container.command[2], 'the manifest next to it is what was sent')
  t.match(fake.requests.filter((r) => r.startsWith('GET')), [/labelSelector=tsflow-run%3D/], 'status lists the pods of the run by label')
})

t.test('files from the workflow host reach the pod through a Secret volume, mode 0400, hiding the host directory', { skip: mountNamespaces ? false : 'the fake kubelet needs root and unshare(1) to mount Secret volumes' }, async (t) => {
  const { dir, remove } = tempDir('k8s-files')
  t.teardown(remove)
  const { mkdirSync, writeFileSync } = await import('node:fs')
  mkdirSync(join(dir, 'keys'))
  writeFileSync(join(dir, 'keys', 'host-only.secret'), 'the pod must not see this')
  writeFileSync(join(dir, 'keys', 'client.key'), 'host copy')
  const { provider, final } = await k8s(t)
  const out = join(dir, 'seen')
  const jobId = await provider.submit(`{ ls ${dir}/keys; cat ${dir}/keys/client.key; stat -L -c %a ${dir}/keys/client.key; } > ${out} 2>&1`, 'files', {
    files: { [join(dir, 'keys', 'client.key')]: 'shipped copy\n', [join(dir, 'keys', 'server.pub')]: 'pub\n' },
  })
  const secret = fake.secret(jobId)
  t.ok(secret, 'a Secret named like the pod holds the files')
  t.match(secret?.metadata.ownerReferences, [{ kind: 'Pod', name: jobId, uid: fake.pod(jobId)?.metadata.uid }], 'owned by the pod')
  t.match(fake.pod(jobId)?.spec.volumes, [{ secret: { secretName: jobId, defaultMode: 0o400 } }])
  t.equal((await final(jobId)).state, 'completed')
  t.equal(readFileSync(out, 'utf8'), 'client.key\nserver.pub\nshipped copy\n400\n', 'the pod sees only the shipped files, mode 0400')
  await provider.shutdown()
  t.equal(fake.secret(jobId), undefined, 'the Secret went with its pod')
})

t.test('walltime is the pod deadline: activeDeadlineSeconds, TSFLOW_BLOCK_WALLTIME_S, and DeadlineExceeded when it passes', async (t) => {
  const { provider, final } = await k8s(t, { walltime: '00:00:01' })
  const jobId = await provider.submit('echo "$TSFLOW_BLOCK_WALLTIME_S $TSFLOW_BLOCK_START_MS" >&2; sleep 30', 'w')
  const pod = fake.pod(jobId)!
  t.equal(pod.spec.activeDeadlineSeconds, 1)
  t.match(pod.spec.containers[0].env, [{ name: 'TSFLOW_BLOCK_ID' }, { name: 'TSFLOW_BLOCK_WALLTIME_S', value: '1' }])
  const status = await final(jobId)
  t.equal(status.state, 'failed')
  t.match(status.message, /failed: DeadlineExceeded: Pod was active on the node longer than the specified deadline/)
})

t.test('schedulerOptions and exclusive have no Kubernetes meaning and are refused, naming the option', async (t) => {
  for (const [options, key] of [[{ schedulerOptions: '#SBATCH --gres=gpu:1' }, 'schedulerOptions'], [{ exclusive: true }, 'exclusive']] as const) {
    const error = t.throws(() => new KubernetesProvider({ image: IMAGE, ...options }).validate('p'), ConfigError) as ConfigError
    t.equal(error.path, `p.${key}`)
  }
})

t.test('nodesPerBlock above 1 is refused: a block is one pod', async (t) => {
  const provider = new KubernetesProvider({ image: IMAGE, nodesPerBlock: 2 })
  const error = t.throws(() => provider.validate('executors[0].provider'), ConfigError) as ConfigError
  t.equal(error.path, 'executors[0].provider.nodesPerBlock')
  t.match(error.message, /one pod on one node.*maxBlocks/)
})

t.test('Kubernetes-specific options are checked, naming the option', async (t) => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{}, 'image', /is required/],
    [{ image: IMAGE, namespace: 'Bad_NS' }, 'namespace', /not a valid Kubernetes name/],
    [{ image: IMAGE, labels: { 'bad key!': 'x' } }, 'labels.bad key!', /label key/],
    [{ image: IMAGE, requests: { cpu: 'lots' } }, 'requests.cpu', /quantity/],
    [{ image: IMAGE, limits: { gpu: 1 } }, 'limits.gpu', /did you mean/],
    [{ image: IMAGE, env: { 'A-B': '1' } }, 'env.A-B', /environment variable/],
    [{ image: IMAGE, imagePullPolicy: 'Sometimes' }, 'imagePullPolicy', /one of/],
    [{ image: IMAGE, imgae: 'x' }, 'imgae', /did you mean 'image'/],
  ]
  for (const [options, key, message] of cases) {
    const error = t.throws(() => new KubernetesProvider(options as never).validate('p'), ConfigError, JSON.stringify(options)) as ConfigError
    t.equal(error.path, `p.${key}`, `path for ${JSON.stringify(options)}`)
    t.match(error.message, message)
  }
})

t.test('initCommand and workerInit run before the command; a failing line fails the block, naming it', async (t) => {
  const { dir, remove } = tempDir('k8s-init')
  t.teardown(remove)
  const ok = await k8s(t, { initCommand: [`echo init >> ${dir}/order`], workerInit: `echo worker >> ${dir}/order` })
  t.equal((await ok.final(await ok.provider.submit(`echo command >> ${dir}/order`, 'i1'))).state, 'completed')
  t.equal(readFileSync(join(dir, 'order'), 'utf8'), 'init\nworker\ncommand\n')

  const bad = await k8s(t, { initCommand: 'false-command-that-does-not-exist --flag' })
  const status = await bad.final(await bad.provider.submit('echo never', 'i2'))
  t.equal(status.state, 'failed')
  t.equal(status.exitCode, 127)
  t.match(status.message, /ended during workerInit with exit code 127 \(failing line: false-command-that-does-not-exist --flag\)/)
})

const failures: [string, Behaviour, RegExp, { exitCode?: number; state?: string }][] = [
  ['tsflow-test:no-such-tag', 'image-pull-backoff', /(ErrImagePull|ImagePullBackOff).*tsflow-test:no-such-tag/, {}],
  ['tsflow-test:invalid', 'invalid-image-name', /InvalidImageName: .*invalid reference format/, {}],
  ['tsflow-test:config-error', 'config-error', /CreateContainerConfigError: secret "tsflow-missing" not found/, {}],
  ['tsflow-test:crash-loop', 'crash-loop', /CrashLoopBackOff: back-off .*last ended with Error \(exit code 4\):\ncrash output/, { exitCode: 4 }],
  ['tsflow-test:oom', 'oom-killed', /terminated: OOMKilled \(exit code 137\).*memory limit/, { exitCode: 137 }],
  ['tsflow-test:evicted', 'evicted', /failed: Evicted: The node was low on resource: memory/, {}],
]
for (const [image, behaviour, message, expect] of failures) {
  t.test(`${behaviour}: the block fails with Kubernetes' reason as its message`, async (t) => {
    const { provider, final } = await k8s(t, { image })
    const jobId = await provider.submit('echo crash output >&2; [ "$TSFLOW_FAIL" = 1 ] && exit 4; sleep 30', 'f', { env: { TSFLOW_FAIL: behaviour === 'crash-loop' ? '1' : '0' } })
    const status = await final(jobId)
    t.equal(status.state, 'failed')
    t.match(status.message, message)
    if (expect.exitCode !== undefined) t.equal(status.exitCode, expect.exitCode)
    if (['image-pull-backoff', 'invalid-image-name', 'config-error', 'crash-loop'].includes(behaviour)) {
      await waitFor(() => fake.pod(jobId) === undefined, 'the stuck pod to be deleted (Kubernetes would retry it for ever)', 10_000)
    }
    t.equal((await provider.status([jobId]))[0]!.state, 'failed', 'the failure is kept after the pod is gone')
  })
}

t.test('an unschedulable pod stays pending with the scheduler message; cancel makes it cancelled', async (t) => {
  const { provider, until } = await k8s(t, { image: 'tsflow-test:unschedulable' })
  const jobId = await provider.submit('sleep 30', 'u')
  const status = await until(jobId, (s) => /Unschedulable/.test(s.message ?? ''), 'to be reported unschedulable')
  t.equal(status.state, 'pending')
  t.match(status.message, /not scheduled: Unschedulable: 0\/1 nodes are available: 1 Insufficient cpu/)
  await provider.cancel([jobId])
  t.equal((await until(jobId, (s) => s.state !== 'pending', 'to leave pending')).state, 'cancelled')
})

t.test('a pod deleted behind the provider is unknown, not completed or failed', async (t) => {
  const { provider, until } = await k8s(t)
  const jobId = await provider.submit('sleep 30', 'gone')
  await until(jobId, (s) => s.state === 'running', 'to run')
  fake.deleteOutOfBand(jobId)
  const status = (await provider.status([jobId]))[0]!
  t.equal(status.state, 'unknown')
  t.match(status.message, /no longer exists in namespace default and tsflow did not delete it/)
})

t.test('API errors are ProviderErrors with the Status reason: 404 namespace, 409 AlreadyExists', async (t) => {
  const missing = await k8s(t, { namespace: 'nowhere' })
  const error = await missing.provider.submit('true', 'x').catch((e: unknown) => e)
  t.type(error, ProviderError)
  t.match((error as Error).message, /creating pod .* HTTP 404 NotFound: namespaces "nowhere" not found/)

  const twice = await k8s(t)
  const jobId = await twice.provider.submit('true', 'dup')
  t.equal((await twice.final(jobId)).state, 'completed')
  const again = await twice.provider.submit('true', 'dup').catch((e: unknown) => e)
  t.type(again, ProviderError)
  t.match((again as Error).message, /HTTP 409 AlreadyExists: pods ".*-dup" already exists/)
})

t.test('API refusals: 422 for requests above limits, 403 for an exceeded quota, with the API server message', async (t) => {
  const invalid = await k8s(t, { requests: { memory: '4Gi' }, limits: { memory: '2Gi' } })
  const error = await invalid.provider.submit('true', 'x').catch((e: unknown) => e)
  t.type(error, ProviderError)
  t.match((error as Error).message, /HTTP 422 Invalid: Pod ".*-x" is invalid: spec.containers\[0\].resources.requests: Invalid value: "4Gi": must be less than or equal to memory limit of 2Gi/)

  const quota = await startFakeKubernetes({ cpuQuota: 2 })
  t.teardown(() => quota.close())
  const { provider } = await k8s(t, { coresPerNode: 2, maxBlocks: 2 }, quota)
  await provider.submit('sleep 30', 'q1')
  const refused = await provider.submit('sleep 30', 'q2').catch((e: unknown) => e)
  t.type(refused, ProviderError)
  t.match((refused as Error).message, /HTTP 403 Forbidden: pods ".*-q2" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=2, used: limits.cpu=2, limited: limits.cpu=2$/)
})

t.test('an unreachable API server is a ProviderError naming its URL, within cmdTimeoutMs', async (t) => {
  // A port that was free a moment ago: connections are refused.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const { dir, remove } = tempDir('k8s-unreachable')
  t.teardown(remove)
  const kubeconfig = join(dir, 'kubeconfig')
  const config = JSON.parse(readFileSync(fake.kubeconfig, 'utf8'))
  config.clusters[0].cluster.server = `https://127.0.0.1:${port}`
  const { writeFileSync } = await import('node:fs')
  writeFileSync(kubeconfig, JSON.stringify(config))
  const { provider } = await k8s(t, { cmdTimeoutMs: 3000 }, { kubeconfig })
  const error = await provider.submit('true', 'x').catch((e: unknown) => e)
  t.type(error, ProviderError)
  t.match((error as Error).message, new RegExp(`cannot reach the Kubernetes API server at https://127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))
  const [status] = await provider.status(['tsflow-x'])
  t.equal(status?.state, 'unknown')
})

t.test('an API server that never answers: the request is aborted after cmdTimeoutMs and named', async (t) => {
  const hung = await startFakeKubernetes({ hang: true })
  t.teardown(() => hung.close())
  const { provider } = await k8s(t, { cmdTimeoutMs: 500 }, hung)
  const error = await provider.submit('true', 'x').catch((e: unknown) => e)
  t.type(error, ProviderError)
  t.match((error as Error).message, new RegExp(`the Kubernetes API server ${hung.url.replace(/\./g, '\\.')} did not answer within cmdTimeoutMs \\(500 ms\\)`))
})

t.test('no configuration at all (no kubeconfig, not in a pod) is a ProviderError saying so, not a connection to localhost:8080', async (t) => {
  const { dir, remove } = tempDir('k8s-home')
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG }
  t.teardown(() => {
    for (const [key, value] of Object.entries(saved)) if (value === undefined) delete process.env[key]
    else process.env[key] = value
    remove()
  })
  process.env.HOME = dir
  delete process.env.KUBECONFIG
  const provider = new KubernetesProvider({ image: IMAGE })
  provider.validate('p')
  await t.rejects(provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger }), { name: 'ProviderError', message: /found no Kubernetes configuration.*set the kubeconfig option/ })
})

t.test('importing tsflow does not load @kubernetes/client-node; init() does', async (t) => {
  // The client takes about half a second to import: workflows and workers that never use
  // Kubernetes must not pay for it. A resolve hook in a child process reports when it loads.
  const { dir, remove } = tempDir('k8s-lazy')
  t.teardown(remove)
  const { writeFileSync } = await import('node:fs')
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { fileURLToPath } = await import('node:url')
  writeFileSync(join(dir, 'hook.mjs'), 'export async function resolve(s, c, next) { if (s.includes("@kubernetes/client-node")) process.stdout.write("client loaded\\n"); return next(s, c) }\n')
  // Inside the package, so that 'tsflow' resolves to it.
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const main = join(root, `.k8s-lazy-${process.pid}.mjs`)
  writeFileSync(
    main,
    [
      `import { register } from 'node:module'`,
      `register(${JSON.stringify(new URL(`file://${join(dir, 'hook.mjs')}`).href)})`,
      `const { KubernetesProvider } = await import('tsflow')`,
      `console.log('tsflow imported')`,
      `const provider = new KubernetesProvider({ image: 'x', kubeconfig: ${JSON.stringify(fake.kubeconfig)} })`,
      `provider.validate('p')`,
      `await provider.init({ scriptDir: ${JSON.stringify(join(dir, 'scripts'))}, logger: { info() {}, warn() {}, error() {}, debug() {} } })`,
      `console.log('initialized')`,
    ].join('\n'),
  )
  t.teardown(() => rmSync(main, { force: true }))
  const { stdout } = await promisify(execFile)(process.execPath, [main], { env: { ...process.env, NODE_OPTIONS: '' } })
  t.equal(stdout, 'tsflow imported\nclient loaded\ninitialized\n')
})

t.test("plain-object configs name the type: { type: 'kubernetes', ... }", async (t) => {
  const { providerOption } = await import('../../dist/providers/index.js')
  const provider = providerOption({ type: 'kubernetes', image: IMAGE, maxBlocks: 3 }, 'executors[0].provider')
  t.type(provider, KubernetesProvider)
  t.equal(provider.maxBlocks, 3)
})
