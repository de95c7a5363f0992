// The boundary specs of tsflow/protocol: one table per boundary gives the checks, the defaults,
// the encoder the spawning side uses and the decoder the process uses.
import t from 'tap'
import { ConfigError, UsageError, resolveConfig } from 'tsflow'
import {
  DEFAULT_HEARTBEAT_PERIOD_MS,
  DEFAULT_HEARTBEAT_THRESHOLD_MS,
  decodeHandshake,
  decodeWorkerEnv,
  encodeHandshake,
  encodeWorkerSetup,
  interchangeSpec,
  managerSpec,
  workerCount,
  type InterchangeSpec,
  type ManagerSpec,
} from 'tsflow/protocol'

t.test('manager spec: what the client encodes is what the manager decodes', async (t) => {
  const spec: ManagerSpec = {
    interchange: 'tcp://10.0.0.1:5555',
    blockId: '3',
    managerId: 'node-1',
    workers: 4,
    maxWorkersPerNode: 8,
    coresPerWorker: 0.5,
    memPerWorker: 1024,
    prefetchCapacity: 'auto',
    workerMode: 'processes',
    cpuAffinity: '0,1;2-3',
    accelerators: ['gpu0', 'gpu1'],
    acceleratorEnv: 'ROCR_VISIBLE_DEVICES',
    heartbeatPeriodMs: 500,
    heartbeatThresholdMs: 5000,
    curveDir: '/keys with space',
    logDir: '/logs',
    logLevel: 'debug',
  }
  t.same(managerSpec.decode(managerSpec.encode(spec)), spec)
  t.same(managerSpec.decode(managerSpec.encode({ interchange: 'ipc:///tmp/x', blockId: 'b', prefetchCapacity: 0 })), {
    interchange: 'ipc:///tmp/x',
    blockId: 'b',
    prefetchCapacity: 0,
  })
  t.equal(managerSpec.decode(['--help']), 'help')
})

t.test('interchange spec round trip and the handshake line', async (t) => {
  const spec: InterchangeSpec = { clientAddress: '127.0.0.1', workerAddress: '0.0.0.0', workerPort: 0, heartbeatPeriodMs: 100, heartbeatThresholdMs: 1000, logLevel: 'warn', runId: 'r1' }
  t.same(interchangeSpec.decode(interchangeSpec.encode(spec)), spec)
  t.same(decodeHandshake(encodeHandshake({ clientPort: 1, workerPort: 2 }).trim()), { clientPort: 1, workerPort: 2 })
  t.throws(() => decodeHandshake('{"clientPort":1}'))
})

t.test('one check per option: the option path for objects, the flag for command lines', async (t) => {
  t.throws(() => managerSpec.validate({ interchange: 'tcp://h:1', blockId: 'b', coresPerWorker: 0 }, 'manager'), {
    name: 'ConfigError',
    path: 'manager.coresPerWorker',
  })
  t.throws(() => managerSpec.decode(['--interchange', 'tcp://h:1', '--block-id', 'b', '--cores-per-worker', '0']), {
    name: 'UsageError',
    message: /^--cores-per-worker must be a positive number/,
  })
  // The HTEX executor's options reuse the manager spec's checks.
  const error = (() => {
    try {
      resolveConfig({ executors: [{ type: 'htex', coresPerWorker: 0 }] })
    } catch (caught) {
      return caught
    }
  })()
  t.ok(error instanceof ConfigError)
  t.equal((error as ConfigError).path, 'executors[0].coresPerWorker')
  t.match((error as ConfigError).message, /must be a positive number/)
  t.throws(() => interchangeSpec.decode(['--heartbeat-period', '500', '--heartbeat-threshold', '500']), UsageError)
  t.throws(() => resolveConfig({ executors: [{ type: 'htex', heartbeatPeriodMs: 500, heartbeatThresholdMs: 500 }] }), {
    name: 'ConfigError',
    path: 'executors[0].heartbeatThresholdMs',
  })
})

t.test('one heartbeat default', async (t) => {
  t.equal(DEFAULT_HEARTBEAT_PERIOD_MS, 2000)
  t.equal(DEFAULT_HEARTBEAT_THRESHOLD_MS, 10_000)
  t.match(interchangeSpec.usage(), /--heartbeat-threshold MS\s+.*\[10000\]/)
})

t.test('the worker count rule', async (t) => {
  const facts = { cpus: 16, memoryMb: 8000 }
  t.equal(workerCount({}, facts).workers, 16)
  t.equal(workerCount({ coresPerWorker: 4 }, facts).workers, 4)
  t.equal(workerCount({ memPerWorker: 3000 }, facts).workers, 2)
  t.equal(workerCount({ accelerators: ['a'] }, facts).workers, 1)
  t.equal(workerCount({ workers: 3, maxWorkersPerNode: 2 }, facts).workers, 2)
})

t.test('worker spec: the setup a manager builds is what a worker process reads', async (t) => {
  const setup = encodeWorkerSetup({ rank: 2, workers: 4, mode: 'processes', managerId: 'm', blockId: 'b', cpus: [4, 5], accelerator: 'g2', acceleratorEnv: 'CUDA_VISIBLE_DEVICES' })
  t.same(decodeWorkerEnv(setup.env), { rank: 2, cpus: [4, 5] })
  t.equal(setup.env.CUDA_VISIBLE_DEVICES, 'g2')
  t.equal(setup.env.TSFLOW_WORKER_COUNT, '4')
  t.same(decodeWorkerEnv(encodeWorkerSetup({ rank: 0, workers: 1, mode: 'threads', managerId: 'm', blockId: 'b', acceleratorEnv: 'X' }).env), { rank: 0 })
})
