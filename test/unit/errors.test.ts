import t from 'tap'
import {
  AppNotFound,
  BadStdStreamFile,
  BashExitFailure,
  brandAsTsflowError,
  CheckpointError,
  ConfigError,
  ConnectorError,
  ObjectNotFound,
  ProxyResolveError,
  ProxyFutureTimeout,
  BorrowError,
  LifetimeEnded,
  PackageNotFound,
  PackagePackError,
  ProxyImportFailed,
  PackageUnpackError,
  PackageUnpackTimeout,
  EndpointNotFound,
  EndpointUnreachable,
  EndpointRefused,
  EndpointStopped,
  DDictFull,
  DDictKeyNotFound,
  DDictTimeout,
  DDictUnreachable,
  DDictDestroyed,
  DDictFrozen,
  DDictStartError,
  DependencyError,
  ErrorCode,
  ExecutorError,
  FunctionNotTransportable,
  InterchangeLost,
  JoinError,
  ManagerLost,
  BlockWalltimeReached,
  WalltimeExceedsBlock,
  NativeAddonUnavailable,
  NativeError,
  NoSuchExecutor,
  ProtocolError,
  ProviderError,
  UsageError,
  ResultTimeout,
  SerializationError,
  ShutdownError,
  TaskCancelled,
  TaskNotFound,
  TsflowError,
  VersionMismatch,
  WalltimeExceeded,
  WorkerLost,
  WorkflowInWorker,
} from 'tsflow'
import { decodeError, encodeError } from '../../dist/serialize/errors.js'
import { decode, encode } from '../../dist/serialize/codec.js'

type AnyErrorClass = abstract new (...args: never[]) => TsflowError

interface Case {
  Class: AnyErrorClass
  code: string
  make: () => TsflowError
}

const cases: Case[] = [
  { Class: ConfigError, code: 'E_CONFIG', make: () => new ConfigError('executors[0].maxThreads', 'must be a positive integer') },
  { Class: DependencyError, code: 'E_DEPENDENCY', make: () => new DependencyError(3, 'consume', [1], new Error('boom')) },
  { Class: WalltimeExceeded, code: 'E_WALLTIME', make: () => new WalltimeExceeded(4, 'slow', 2) },
  { Class: BashExitFailure, code: 'E_BASH_EXIT', make: () => new BashExitFailure('build', 'make all', 2, null) },
  {
    Class: BadStdStreamFile,
    code: 'E_BAD_STD_STREAM',
    make: () => new BadStdStreamFile(11, 'build', 'stderr', '/logs/build.err', Object.assign(new Error('EISDIR'), { code: 'EISDIR' })),
  },
  { Class: ResultTimeout, code: 'E_RESULT_TIMEOUT', make: () => new ResultTimeout(5, 100, 'running') },
  { Class: TaskCancelled, code: 'E_CANCELLED', make: () => new TaskCancelled(6, 'work') },
  { Class: SerializationError, code: 'E_SERIALIZATION', make: () => new SerializationError('cannot encode') },
  { Class: FunctionNotTransportable, code: 'E_FUNCTION_TRANSPORT', make: () => new FunctionNotTransportable('app', 'why') },
  { Class: AppNotFound, code: 'E_APP_NOT_FOUND', make: () => new AppNotFound('not found') },
  { Class: WorkflowInWorker, code: 'E_WORKFLOW_IN_WORKER', make: () => new WorkflowInWorker('loadConfig()') },
  { Class: NativeAddonUnavailable, code: 'E_NATIVE_UNAVAILABLE', make: () => new NativeAddonUnavailable('no addon') },
  { Class: NativeError, code: 'E_NATIVE', make: () => new NativeError('setsid failed', 'setsid', 1) },
  { Class: ExecutorError, code: 'E_EXECUTOR', make: () => new ExecutorError('threads', 'broken') },
  { Class: NoSuchExecutor, code: 'E_NO_EXECUTOR', make: () => new NoSuchExecutor('app', ['gpu'], ['threads']) },
  { Class: ShutdownError, code: 'E_SHUTDOWN', make: () => new ShutdownError('shut down') },
  { Class: CheckpointError, code: 'E_CHECKPOINT', make: () => new CheckpointError('bad checkpoint') },
  { Class: TaskNotFound, code: 'E_TASK_NOT_FOUND', make: () => new TaskNotFound('no task #9') },
  { Class: JoinError, code: 'E_JOIN', make: () => new JoinError(7, 'joiner', [8], [new Error('inner')]) },
  { Class: WorkerLost, code: 'E_WORKER_LOST', make: () => new WorkerLost(9, 'threads', 1, null) },
  { Class: ManagerLost, code: 'E_MANAGER_LOST', make: () => new ManagerLost(10, 'm1', 'node1', 0, 'missed heartbeats') },
  { Class: BlockWalltimeReached, code: 'E_BLOCK_WALLTIME', make: () => new BlockWalltimeReached(11, 'node1', '3', 'the block reached its walltime') },
  { Class: WalltimeExceedsBlock, code: 'E_WALLTIME_EXCEEDS_BLOCK', make: () => new WalltimeExceedsBlock(12, 'simulate', 7200, 3600, 'executor htex', 5000) },
  { Class: ProtocolError, code: 'E_PROTOCOL', make: () => new ProtocolError('bad frame') },
  {
    Class: VersionMismatch,
    code: 'E_VERSION_MISMATCH',
    make: () => new VersionMismatch('manager m1', { protocol: 2, version: '0.2.0' }, { protocol: 1, version: '0.1.0' }),
  },
  { Class: InterchangeLost, code: 'E_INTERCHANGE_LOST', make: () => new InterchangeLost('gone') },
  { Class: ProviderError, code: 'E_PROVIDER', make: () => new ProviderError('slurm', 'sbatch failed') },
  { Class: UsageError, code: 'E_USAGE', make: () => new UsageError('--workers expects a positive integer') },
  { Class: ConnectorError, code: 'E_CONNECTOR', make: () => new ConnectorError('file(/tmp/x)', 'EACCES') },
  { Class: ObjectNotFound, code: 'E_OBJECT_NOT_FOUND', make: () => new ObjectNotFound('local', 'k1') },
  { Class: ProxyFutureTimeout, code: 'E_PROXY_FUTURE_TIMEOUT', make: () => new ProxyFutureTimeout('data', "'k1'", 500) },
  { Class: ProxyResolveError, code: 'E_PROXY_RESOLVE', make: () => new ProxyResolveError('data', 'k1', { cause: new Error('gone') }) },
  { Class: BorrowError, code: 'E_BORROW', make: () => new BorrowError('moved', 'data', "'k1'", 'owned proxy was moved') },
  { Class: LifetimeEnded, code: 'E_LIFETIME_ENDED', make: () => new LifetimeEnded("context 'c1'") },
  { Class: PackageNotFound, code: 'E_PACKAGE_NOT_FOUND', make: () => new PackageNotFound('mathjs', '/w/flow.js', '/w') },
  { Class: PackagePackError, code: 'E_PACKAGE_PACK', make: () => new PackagePackError('mathjs', '/w/node_modules/mathjs', 'EACCES') },
  { Class: ProxyImportFailed, code: 'E_PROXY_IMPORT', make: () => new ProxyImportFailed('mathjs@1.0.0', 'file:///w/flow.js', 'store key not found') },
  { Class: PackageUnpackError, code: 'E_PACKAGE_UNPACK', make: () => new PackageUnpackError('mathjs', "'k1'", '/dev/shm/c/mathjs@1.0.0-0123456789abcdef', 'not a tar archive') },
  { Class: PackageUnpackTimeout, code: 'E_PACKAGE_UNPACK_TIMEOUT', make: () => new PackageUnpackTimeout('mathjs', '/c/mathjs@1.0.0-0123', '/c/mathjs@1.0.0-0123.lock', 1000, 'its lock is held by pid 12 on host n1') },
  { Class: EndpointNotFound, code: 'E_ENDPOINT_NOT_FOUND', make: () => new EndpointNotFound('lab', 'no config.json in /home/u/.tsflow/endpoints/lab') },
  { Class: EndpointUnreachable, code: 'E_ENDPOINT_UNREACHABLE', make: () => new EndpointUnreachable('lab', 'tcp://10.0.0.2:5555', 'no answer within 10000 ms') },
  { Class: EndpointRefused, code: 'E_ENDPOINT_REFUSED', make: () => new EndpointRefused('lab', 'client key not on the allow-list') },
  { Class: EndpointStopped, code: 'E_ENDPOINT_STOPPED', make: () => new EndpointStopped('lab', 'stopped while task #3 was queued') },
  { Class: DDictFull, code: 'E_DDICT_FULL', make: () => new DDictFull('sims', 'sim-3', 1, '10.0.0.12:6380', 940_000_000, 943_718_400) },
  { Class: DDictKeyNotFound, code: 'E_DDICT_KEY_NOT_FOUND', make: () => new DDictKeyNotFound('sims', 'sim-3') },
  { Class: DDictTimeout, code: 'E_DDICT_TIMEOUT', make: () => new DDictTimeout('sims', 'sim-3', 5000, 'waitFor of') },
  { Class: DDictUnreachable, code: 'E_DDICT_UNREACHABLE', make: () => new DDictUnreachable('sims', 1, '10.0.0.12:6380', 'connection refused') },
  { Class: DDictDestroyed, code: 'E_DDICT_DESTROYED', make: () => new DDictDestroyed('sims', 'get') },
  { Class: DDictFrozen, code: 'E_DDICT_FROZEN', make: () => new DDictFrozen('sims', 'sim-3', 'set') },
  { Class: DDictStartError, code: 'E_DDICT_START', make: () => new DDictStartError('sims', 'redis-server exited with code 1 on node n1') },
]

t.test('ErrorCode', async (t) => {
  const values = Object.values(ErrorCode)
  t.equal(new Set(values).size, values.length, 'codes are unique')
  for (const value of values) t.match(value, /^E_[A-Z_]+$/, `${value} has the E_ form`)
  const covered = new Set(cases.map((c) => c.code))
  for (const value of values) t.ok(covered.has(value), `${value} has an error class under test`)
})

t.test('every class has its stable code, name and brand', async (t) => {
  for (const { Class, code, make } of cases) {
    const error = make()
    const name = Class.name
    t.equal(error.code, code, `${name}.code`)
    t.equal(error.name, name, `${name}.name is the class name`)
    t.ok(error instanceof Error, `${name} instanceof Error`)
    t.ok(error instanceof TsflowError, `${name} instanceof TsflowError`)
    t.ok(error instanceof Class, `${name} instanceof its class`)
    t.match(error.stack ?? '', new RegExp(`^${name}: `), `${name} stack starts with its name`)
    t.equal(String(error), `${name}: ${error.message}`, `${name} toString`)
    t.notOk(Object.keys(error).includes('name'), `${name}.name is not enumerable`)
    const matching = cases.filter((other) => error instanceof other.Class).map((other) => other.Class.name)
    t.same(matching, [name], `${name} is an instance of no other tsflow error class`)
  }
})

t.test('instanceof works for errors rebuilt from the wire', async (t) => {
  const original = new WalltimeExceeded(12, 'simulate', 30)
  const rebuilt = decodeError(encodeError(original))
  t.not(rebuilt, original)
  t.ok(rebuilt instanceof WalltimeExceeded, 'instanceof WalltimeExceeded')
  t.ok(rebuilt instanceof TsflowError, 'instanceof TsflowError')
  t.ok(rebuilt instanceof Error, 'instanceof Error')
  t.notOk(rebuilt instanceof ConfigError, 'not instanceof ConfigError')
  t.notOk(rebuilt instanceof DependencyError, 'not instanceof DependencyError')
  t.equal(rebuilt.name, 'WalltimeExceeded')
  t.equal(rebuilt.message, original.message)
  t.equal((rebuilt as WalltimeExceeded).code, 'E_WALLTIME')
  t.equal((rebuilt as WalltimeExceeded).walltimeSeconds, 30, 'own props survive')

  // Through the binary codec as well, as between processes.
  const overTheWire = decodeError(decode(encode(encodeError(original))))
  t.ok(overTheWire instanceof WalltimeExceeded, 'instanceof after a binary round trip')
  t.notOk(overTheWire instanceof ConfigError)

  for (const { Class, make } of cases) {
    const copy = decodeError(decode(encode(encodeError(make()))))
    t.ok(copy instanceof Class, `${Class.name} survives the wire`)
    t.ok(copy instanceof TsflowError, `${Class.name} copy is a TsflowError`)
  }
})

t.test('instanceof matches on the brand and code, not prototype identity', async (t) => {
  const foreign = Object.assign(new Error('from another copy of tsflow'), { code: ErrorCode.CONFIG })
  t.notOk(foreign instanceof ConfigError, 'an unbranded error with a tsflow code is not a tsflow error')
  t.notOk(foreign instanceof TsflowError)
  brandAsTsflowError(foreign)
  t.ok(foreign instanceof ConfigError, 'branded with the CONFIG code it is a ConfigError')
  t.ok(foreign instanceof TsflowError)
  t.notOk(foreign instanceof WalltimeExceeded)

  const brandedOnly = new Error('no code')
  brandAsTsflowError(brandedOnly)
  t.ok(brandedOnly instanceof TsflowError, 'a branded error without a code is a TsflowError')
  t.notOk(brandedOnly instanceof ConfigError)

  for (const value of [null, undefined, 'E_CONFIG', 42, { code: 'E_CONFIG' }, new Error('plain')]) {
    t.notOk((value as unknown) instanceof TsflowError, `${String(value)} is not a TsflowError`)
    t.notOk((value as unknown) instanceof ConfigError, `${String(value)} is not a ConfigError`)
  }
})

t.test('cause is kept when given and absent otherwise', async (t) => {
  const cause = new Error('root')
  const withCause = new ShutdownError('stopping', { cause })
  t.equal(withCause.cause, cause)
  const without = new ShutdownError('stopping')
  t.notOk('cause' in without, 'no cause property without a cause')
  t.equal(new ExecutorError('x', 'y', { cause: 'text' }).cause, 'text', 'non-Error causes are kept')
})

t.test('ConfigError', async (t) => {
  const error = new ConfigError('executors[0].maxThreads', 'must be a positive integer (got 0)')
  t.equal(error.path, 'executors[0].maxThreads')
  t.ok(error.message.startsWith('executors[0].maxThreads '), 'message starts with the path')
  t.equal(error.message, 'executors[0].maxThreads must be a positive integer (got 0)')
  const noPath = new ConfigError('', 'the config must be a plain object')
  t.equal(noPath.path, '')
  t.equal(noPath.message, 'the config must be a plain object', 'no leading space without a path')
})

t.test('DependencyError', async (t) => {
  const root = new TypeError('bad input')
  const first = new DependencyError(2, 'middle', [1], root)
  t.equal(first.taskId, 2)
  t.same(first.dependencyTaskIds, [1])
  t.equal(first.cause, root)
  t.equal(first.rootCause, root)
  t.match(first.message, /task #2 \(middle\)/, 'names the task id and app')
  t.match(first.message, /dependency #1 failed/, 'names the dependency')
  t.match(first.message, /TypeError: bad input/, 'includes the cause')

  const second = new DependencyError(3, 'last', [2, 7], first)
  t.match(second.message, /task #3 \(last\)/)
  t.match(second.message, /#2, #7/, 'lists every failed dependency')
  t.equal(second.cause, first)
  t.equal(second.rootCause, root, 'rootCause walks nested DependencyErrors')

  let deep: DependencyError = second
  for (let i = 0; i < 50; i++) deep = new DependencyError(100 + i, 'chain', [99 + i], deep)
  t.equal(deep.rootCause, root, 'rootCause walks a long chain')

  const nonError = new DependencyError(5, 'app', [4], 'a string failure')
  t.equal(nonError.rootCause, 'a string failure', 'a non-Error root cause is returned as is')
  t.match(nonError.message, /failed: a string failure/)

  const noDeps = new DependencyError(6, 'app', [], new Error('x'))
  t.match(noDeps.message, /\(an input\)/, 'failed inputs without task ids are described')

  const rebuilt = decodeError(encodeError(second))
  t.ok(rebuilt instanceof DependencyError, 'a rebuilt DependencyError is a DependencyError')
  t.same((rebuilt as DependencyError).dependencyTaskIds, [2, 7])
  t.equal((rebuilt as DependencyError).taskId, 3)
})

t.test('messages name task ids and app names', async (t) => {
  t.match(new WalltimeExceeded(4, 'slow', 2.5).message, /task #4 \(slow\) exceeded its walltime of 2\.5 s/)
  t.equal(new WalltimeExceeded(4, 'slow', 2.5).walltimeSeconds, 2.5)
  t.match(new ResultTimeout(5, 100, 'running').message, /task #5 had no result after 100 ms \(state: running\); the task itself goes on/)
  t.equal(new TaskCancelled(6, 'work').message, 'task #6 (work) was cancelled by the user')
  t.equal(new TaskCancelled(6, 'work', 'cancelled at shutdown').message, 'task #6 (work) was cancelled at shutdown')
  t.match(new FunctionNotTransportable('myApp', 'it is a class').message, /^app myApp cannot be sent to a worker: it is a class$/)
  const inWorker = new WorkflowInWorker('loadConfig()')
  t.match(inWorker.message, /^loadConfig\(\) was called inside a tsflow worker/)
  t.match(inWorker.message, /main\(import\.meta/, 'says how to fix it')

  const exec = new ExecutorError('gpu', 'start() was called twice')
  t.equal(exec.message, 'executor gpu: start() was called twice')
  t.equal(exec.executorLabel, 'gpu')

  t.match(new NoSuchExecutor('train', ['gpu', 'big'], ['threads', 'htex']).message, /app train asks for executor 'gpu' or 'big', but the loaded config has only 'threads', 'htex'/)
  t.match(new NoSuchExecutor('train', ['gpu'], []).message, /has only none/)

  const native = new NativeError('setsid failed', 'setsid', 1)
  t.equal(native.syscall, 'setsid')
  t.equal(native.errno, 1)

  const provider = new ProviderError('slurm', 'sbatch exited 1')
  t.equal(provider.message, 'provider slurm: sbatch exited 1')
  t.equal(provider.provider, 'slurm')
})

t.test('BashExitFailure', async (t) => {
  const exited = new BashExitFailure('build', 'make   all\n  -j4', 2, null)
  t.equal(exited.exitCode, 2)
  t.equal(exited.signal, null)
  t.equal(exited.command, 'make   all\n  -j4', 'the command is kept verbatim')
  t.equal(exited.message, 'bash app build exited with code 2: make all -j4', 'the message shows it on one line')

  const killed = new BashExitFailure('build', 'sleep 100', null, 'SIGKILL', ' (walltime)')
  t.equal(killed.message, 'bash app build was killed by SIGKILL: sleep 100 (walltime)')

  const long = 'x'.repeat(500)
  const abbreviated = new BashExitFailure('big', long, 1, null)
  t.ok(abbreviated.message.length < 260, 'long commands are abbreviated')
  t.ok(abbreviated.message.endsWith('…'))
  t.equal(abbreviated.command, long)
})

t.test('JoinError', async (t) => {
  const first = new RangeError('out of range')
  const error = new JoinError(7, 'joiner', [8, 9], [first, 'second'])
  t.same(error.failedTaskIds, [8, 9])
  t.same(error.errors, [first, 'second'])
  t.equal(error.cause, first, 'cause is the first failure')
  t.match(error.message, /join app joiner \(task #7\): 2 of the futures it returned failed \(#8, #9\); first: RangeError: out of range/)
  t.match(new JoinError(1, 'j', [2], ['plain']).message, /first: plain$/)
})

t.test('WorkerLost and ManagerLost', async (t) => {
  const exited = new WorkerLost(9, 'executor threads', 1, null)
  t.equal(exited.message, 'the worker running task #9 on executor threads exited with code 1 before the task finished')
  t.equal(exited.exitCode, 1)
  const killed = new WorkerLost(9, 'node1', null, 'SIGSEGV')
  t.match(killed.message, /was killed by SIGSEGV/)
  t.equal(killed.signal, 'SIGSEGV')

  const when = Date.UTC(2024, 0, 2, 3, 4, 5)
  const lost = new ManagerLost(10, 'm1', 'node1', when, 'missed 3 heartbeats')
  t.equal(lost.message, 'task #10 was lost with manager m1 on node1: missed 3 heartbeats (last heartbeat 2024-01-02T03:04:05.000Z)')
  t.equal(lost.managerId, 'm1')
  t.equal(lost.host, 'node1')
  t.equal(lost.lastHeartbeat, when)
})

t.test('VersionMismatch names both sides', async (t) => {
  const error = new VersionMismatch('manager m1', { protocol: 2, version: '0.2.0' }, { protocol: 1, version: '0.1.0' })
  t.match(error.message, /^manager m1 speaks protocol 2 \(tsflow 0\.2\.0\) but this side speaks protocol 1 \(tsflow 0\.1\.0\)/)
  t.match(error.message, /install the same tsflow version everywhere/)
})

t.test('DependencyError: the message stays the same size however deep the chain', async (t) => {
  const root = new Error('the real failure')
  let error = new DependencyError(2, 'step', [1], root)
  const firstLength = error.message.length
  for (let id = 3; id < 20_000; id++) error = new DependencyError(id, 'step', [id - 1], error)
  t.ok(error.message.length < firstLength + 100, `${error.message.length} chars at depth 20,000 (depth 1: ${firstLength})`)
  t.match(error.message, /task #19999 \(step\) was not run because its dependency #19998 failed/)
  t.match(error.message, /root cause \(task #1, 19998 levels up\): Error: the real failure/)
  t.equal(error.rootCause, root)
  t.equal(error.rootTaskId, 1)
  t.equal(error.cause instanceof DependencyError && error.cause.taskId, 19998, 'cause is the direct dependency\'s error')
})
