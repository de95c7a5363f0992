/**
 * tsflow: wrap functions as apps, call them to get futures, and let the DataFlowKernel run the
 * tasks on the executors the config names.
 */
export { app, bashApp, joinApp, type App, type FutureArgs, type Resolvable, type Joined, type CallOptionsWithKernel } from './app/app.js'
export { main, isMainModule } from './app/main.js'
export { submitScoped } from './app/scoped.js'
export { AppFuture, DataFuture, Future } from './dataflow/future.js'
export { awaitAll, awaitAllSettled, type AwaitAllOptions, type Progress, type Settled } from './dataflow/await-all.js'
export { File } from './data/file.js'
export { DataFlowKernel, load, dfk, clear, type CleanupOptions } from './dataflow/kernel.js'
export { TaskState, FINAL_STATES, isFinal, type TaskStateValue } from './dataflow/states.js'
export {
  channels,
  CHANNEL_NAMES,
  type TypedChannel,
  type TaskStateMessage,
  type TaskRetryMessage,
  type WorkflowStartMessage,
  type WorkflowEndMessage,
  type BlockMessage,
  type ManagerMessage,
  type ResourceMessage,
} from './dataflow/channels.js'
export type { BlockEvent, BlockState as MonitoredBlockState, ManagerEvent, ResourceSample, ExecutorMonitor } from './protocol/monitoring.js'
export type { AppOptions, BashAppOptions, CallOptions } from './dataflow/app-definition.js'
export { AUTO_LOGNAME, AUTO, autoLogPath, type StdStreamOption } from './dataflow/std-streams.js'
export { getAllCheckpoints, getLastCheckpoint, type CheckpointMode } from './dataflow/checkpoint.js'
export {
  resolveConfig,
  registerExecutorType,
  type Config,
  type ExecutorSpec,
  type RetryHandler,
  type RetryTaskInfo,
  type ProgressOptions,
  type ProgressStream,
} from './config/config.js'
export { ThreadPoolExecutor, type ThreadPoolExecutorOptions } from './executors/threads/executor.js'
export { HighThroughputExecutor } from './executors/htex/executor.js'
export type { HighThroughputExecutorOptions } from './executors/htex/options.js'
export { EndpointExecutor } from './executors/endpoint/executor.js'
export type { EndpointExecutorOptions } from './executors/endpoint/options.js'
export { EndpointClient, type EndpointClientOptions, type CollectedResult } from './executors/endpoint/client.js'
export type { EndpointStatus } from './protocol/endpoint.js'
export * from './ddict/index.js'
export { LocalProvider } from './providers/local/provider.js'
export { KubernetesProvider, type KubernetesProviderOptions, KUBERNETES_STATE, podToBlockStatus } from './providers/index.js'
export { GridEngineProvider, type GridEngineProviderOptions } from './providers/gridengine/provider.js'
export { SlurmProvider, type SlurmProviderOptions } from './providers/slurm/provider.js'
export { PBSProProvider, type PBSProProviderOptions } from './providers/pbspro/provider.js'
export type { ExecutionProvider, BlockStatus, BlockState, ProviderContext, SubmitOptions } from './providers/base.js'
export { ClusterProvider, runCommand, renderTemplate, parseWalltime, formatWalltime, type JobInfo, type BlockScript, type CommandResult } from './providers/index.js'
export type { BlockOptions } from './providers/options.js'
export {
  SingleNodeLauncher,
  SimpleLauncher,
  WrappedLauncher,
  SrunLauncher,
  MpiExecLauncher,
  MpiRunLauncher,
  AprunLauncher,
  JsrunLauncher,
  registerLauncherType,
  LAUNCHER_TYPES,
  type Launcher,
  type LauncherType,
} from './launchers/index.js'
export { registerProviderType } from './providers/index.js'
export { PluginRegistry, type PluginType } from './util/registry.js'
export type { Executor, ExecutorHost, ExecutorTask, TaskOutcome, ResourceSpec } from './executors/base.js'
export { taskContext, type TaskContext } from './runtime/context.js'
export { PROTOCOL_VERSION, TSFLOW_VERSION } from './protocol/version.js'
// The data layer (also `tsflow/proxy`): the classes at the top level, everything under `proxy`
// (`proxy.resolve`, `proxy.extract`, ...), where generic names cannot clash with the rest.
export * as proxy from './proxy/index.js'
export { Store, ProxyFuture, LocalConnector, FileConnector, RedisConnector, ShmConnector, MultiConnector, ZmqConnector } from './proxy/index.js'
export { ContextLifetime, LeaseLifetime, StaticLifetime } from './proxy/index.js'
export type { Connector, ConnectorConfig, ObjectKey, StoreConfig, StoreOptions, ProxyOptions, OwnedProxy, RefProxy, RefMutProxy } from './proxy/index.js'
export type { ExecutorProxyOptions } from './executors/proxying.js'
export type { ExecutorImportsOptions } from './executors/imports.js'
export * from './errors.js'
