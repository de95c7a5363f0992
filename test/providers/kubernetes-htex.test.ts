// The high-throughput executor on the KubernetesProvider, with CURVE encryption on: managers run
// in pods started by the fake kubelet (test/helpers/fake-kubernetes.ts) and connect back to the
// interchange over TCP, encrypted, with the keys the provider shipped in a Secret volume.

import { mkdtempSync, rmSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'

import t from 'tap'

import { DataFlowKernel, HighThroughputExecutor, KubernetesProvider, ProviderError } from 'tsflow'
import { listDir, podOf } from '../fixtures/kubernetes-apps.js'
import { mountNamespaces, startFakeKubernetes } from '../helpers/fake-kubernetes.js'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../helpers/netns.js'
import { waitFor } from '../helpers/wait.js'

const fake = await startFakeKubernetes({ behaviours: { 'tsflow-test:no-such-tag': 'image-pull-backoff' } })
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-k8s-htex-'))
t.teardown(async () => {
  await fake.close()
  rmSync(scratch, { recursive: true, force: true })
})

// A pod reaches the interchange over the network: listen on this host's non-loopback address
// when it has one. On 127.0.0.1 encryption is forced on, so the test holds either way.
const external = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry?.family === 'IPv4' && !entry.internal)?.address
const address = external ?? '127.0.0.1'

t.test(`tasks run in pods whose managers connect to ${address} with CURVE encryption on`, async (t) => {
  const executor = new HighThroughputExecutor({
    address,
    encrypted: true,
    workerMode: 'threads',
    maxWorkersPerNode: 2,
    heartbeatPeriodMs: 500,
    heartbeatThresholdMs: 5000,
    provider: new KubernetesProvider({ image: 'tsflow-test:1', kubeconfig: fake.kubeconfig, initBlocks: 1, maxBlocks: 1, gracePeriodSeconds: 2 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
  t.equal(executor.describe().encrypted, true, 'CURVE is on')

  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => podOf.with({ dfk: kernel })(i)))
  t.same(results.map((r) => r.x), Array.from({ length: 20 }, (_, i) => i * 2), 'every task ran')
  const pods = fake.pods()
  t.equal(pods.length, 1, 'one block, one pod')
  const pod = pods[0]!
  t.same([...new Set(results.map((r) => r.pod))], [pod.metadata.name], 'the tasks ran in that pod')
  t.equal(pod.status.phase, 'Running')
  t.equal(executor.managers().length, 1, 'its manager registered through the encrypted link')

  const mount = pod.spec.containers[0].volumeMounts?.[0]
  t.match(mount, { mountPath: /\/curve$/, readOnly: true }, "the key directory is a Secret volume in the pod")
  if (mountNamespaces) {
    t.same(await listDir.with({ dfk: kernel })(mount.mountPath), ['client.public', 'client.secret', 'server.public'], 'the pod sees the shipped keys and never server.secret')
  }
})

const noNetns = netnsUnavailable()
t.test('pods on two network-namespace nodes reach the interchange over the bridge, encrypted', { skip: noNetns ? `it ${noNetns}` : false }, async (t) => {
  const prefix = `tsk8s${process.pid % 10000}`
  t.teardown(() => fakeHostsDown(prefix, 2))
  const hosts = fakeHostsUp(prefix, 2, `10.232.${process.pid % 200}`)
  const cluster = await startFakeKubernetes({ nodes: hosts.hosts })
  t.teardown(() => cluster.close())
  const executor = new HighThroughputExecutor({
    address: hosts.rootAddress,
    workerMode: 'threads',
    maxWorkersPerNode: 1,
    heartbeatPeriodMs: 500,
    heartbeatThresholdMs: 5000,
    strategy: 'none',
    provider: new KubernetesProvider({ image: 'tsflow-test:1', kubeconfig: cluster.kubeconfig, initBlocks: 2, maxBlocks: 2, gracePeriodSeconds: 2 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo-netns'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
  t.equal(executor.describe().encrypted, true, 'CURVE is on (the bridge address is not loopback)')
  await waitFor(() => executor.managers().length === 2, 'a manager in each pod to register', 60_000)
  const pods = cluster.pods()
  t.same(pods.map((pod) => pod.status.podIP).sort(), hosts.hosts.map((h) => h.address).sort(), 'one pod on each node, with its address')
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => podOf.with({ dfk: kernel })(i)))
  const seen = new Set(results.map((r) => `${r.pod} ${r.address}`))
  for (const pod of pods) t.ok(seen.has(`${pod.metadata.name} ${pod.status.podIP}`), `tasks ran in pod ${pod.metadata.name} at ${pod.status.podIP}`)
})

t.test('a block whose image cannot be pulled fails the waiting tasks with the pull error, not a hang', async (t) => {
  const executor = new HighThroughputExecutor({
    address,
    encrypted: true,
    provider: new KubernetesProvider({ image: 'tsflow-test:no-such-tag', kubeconfig: fake.kubeconfig, initBlocks: 1, maxBlocks: 1 }),
    strategyPeriodMs: 100,
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo-pull'), executors: [executor], retries: 0 }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
  const error = await podOf.with({ dfk: kernel })(1).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(error, ProviderError)
  t.match((error as Error).message, /(ErrImagePull|ImagePullBackOff).*tsflow-test:no-such-tag/)
  await waitFor(() => fake.pods().every((pod) => pod.spec.containers[0].image !== 'tsflow-test:no-such-tag'), 'the stuck pods to be deleted', 10_000)
})

t.test("a block whose initCommand fails gives the waiting tasks the container's stderr", async (t) => {
  const executor = new HighThroughputExecutor({
    address,
    encrypted: true,
    provider: new KubernetesProvider({ image: 'tsflow-test:1', kubeconfig: fake.kubeconfig, initCommand: 'source /nonexistent/venv/bin/activate', initBlocks: 1, maxBlocks: 1 }),
    strategyPeriodMs: 100,
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo-init'), executors: [executor], retries: 0 }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
  const error = await podOf.with({ dfk: kernel })(1).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(error, ProviderError)
  t.match((error as Error).message, /\/nonexistent\/venv\/bin\/activate: No such file or directory/, 'the stderr line')
  t.match((error as Error).message, /ended during workerInit with exit code 1/, 'what happened')
})

t.test('examples/kubernetes.ts runs as written against the stand-in cluster', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { fileURLToPath } = await import('node:url')
  const science = await startFakeKubernetes({ namespaces: ['science'] })
  t.teardown(() => science.close())
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const cwd = mkdtempSync(join(scratch, 'example-'))
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'out/examples/kubernetes.js')], {
    cwd,
    env: { ...process.env, NODE_OPTIONS: '', TSFLOW_ADDRESS: address, TSFLOW_KUBECONFIG: science.kubeconfig, TSFLOW_IMAGE: 'tsflow-test:1', TSFLOW_MAX_BLOCKS: '2' },
    timeout: 120_000,
  })
  t.match(stdout, /sum of squares 328350/)
  t.match(science.requests, [/^POST \/api\/v1\/namespaces\/science\/pods$/, /^POST \/api\/v1\/namespaces\/science\/secrets$/], 'a pod and its key Secret in namespace science')
  t.same(science.pods(), [], 'the example left no pod behind')
})

t.test('tsflow-perf --config examples/kubernetes.ts measures on the stand-in cluster and records the kubernetes provider', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { fileURLToPath } = await import('node:url')
  const { readFileSync } = await import('node:fs')
  const science = await startFakeKubernetes({ namespaces: ['science'] })
  t.teardown(() => science.close())
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const cwd = mkdtempSync(join(scratch, 'perf-'))
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [join(root, 'dist/bin/perf.js'), '--config', join(root, 'examples/kubernetes.ts'), '--time', '0.2', '--results-dir', join(cwd, 'results')],
    { cwd, env: { ...process.env, NODE_OPTIONS: '', TSFLOW_ADDRESS: address, TSFLOW_KUBECONFIG: science.kubeconfig, TSFLOW_IMAGE: 'tsflow-test:1', TSFLOW_MAX_BLOCKS: '1' }, timeout: 120_000 },
  )
  t.match(stdout, /tsflow-perf: [\d,]+ tasks\/s/)
  const run = JSON.parse(readFileSync(join(cwd, 'results', 'tsflow-perf.jsonl'), 'utf8').trim().split('\n').pop()!)
  t.equal(run.setup.provider, 'kubernetes', 'the history line names the provider, for tsflow-perf compare')
  t.ok(run.iterations.every((i: { failed: number }) => i.failed === 0), 'no task failed')
  t.same(science.pods(), [], 'no pod left behind')
})
