import type { Check } from '../util/schema.js'
import { PluginRegistry } from '../util/registry.js'
import type { ExecutionProvider } from './base.js'
import { LocalProvider } from './local/provider.js'
import { KubernetesProvider, type KubernetesProviderOptions } from './kubernetes/provider.js'
import { GridEngineProvider, type GridEngineProviderOptions } from './gridengine/provider.js'
import { SlurmProvider } from './slurm/provider.js'
import { PBSProProvider } from './pbspro/provider.js'

export {
  FINAL_BLOCK_STATES,
  isFinalBlockState,
  type BlockState,
  type BlockStatus,
  type ExecutionProvider,
  type ProviderContext,
  type SubmitOptions,
} from './base.js'
export { ClusterProvider, readExitRecord, type JobInfo, type BlockScript } from './cluster/provider.js'
export { runCommand, describeFailure, commandLine, type CommandResult, type RunOptions } from './cluster/command.js'
export { renderTemplate, loadTemplate } from './cluster/template.js'
export { blockOptionShape, resolveBlockOptions, parseWalltime, formatWalltime, DEFAULT_CMD_TIMEOUT_MS, type BlockOptions, type ResolvedBlockOptions } from './options.js'
export { LocalProvider, type LocalProviderOptions } from './local/provider.js'
export { KubernetesProvider, type KubernetesProviderOptions } from './kubernetes/provider.js'
export { STATE as KUBERNETES_STATE, podToBlockStatus, type PodLike, type PodBlockStatus } from './kubernetes/states.js'
export { GridEngineProvider, type GridEngineProviderOptions } from './gridengine/provider.js'
export { STATE_TABLE as GRID_ENGINE_STATE_TABLE } from './gridengine/parse.js'
export { SlurmProvider, type SlurmProviderOptions } from './slurm/provider.js'
export { STATE_TABLE as SLURM_STATE_TABLE } from './slurm/parse.js'
export { PBSProProvider, type PBSProProviderOptions } from './pbspro/provider.js'
export { STATE_TABLE as PBS_STATE_TABLE } from './pbspro/parse.js'
export { readTail } from '../util/file-tail.js'

type ProviderFactory = (options: Record<string, unknown>) => ExecutionProvider

function isProvider(value: unknown): value is ExecutionProvider {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ExecutionProvider).submit === 'function' &&
    typeof (value as ExecutionProvider).status === 'function' &&
    typeof (value as ExecutionProvider).cancel === 'function'
  )
}

/**
 * The `provider` option of an executor: a provider object (`new LocalProvider({ maxBlocks: 4 })`)
 * or a plain object naming a registered type (`{ type: 'local', maxBlocks: 4 }`). Either way the
 * provider is validated here, so its errors name `executors[0].provider.maxBlocks` and so on.
 */
export const providers = new PluginRegistry<ExecutionProvider>({
  what: 'a provider (e.g. new LocalProvider())',
  isInstance: isProvider,
  validate: (provider, path) => provider.validate(path),
})
providers.register('local', (options) => new LocalProvider(options))
providers.register('kubernetes', (options) => new KubernetesProvider(options as unknown as KubernetesProviderOptions))
// 'sge' is the name most Grid Engine users know it by (Parsl: GridEngineProvider, type sge).
providers.register('gridengine', (options) => new GridEngineProvider(options as GridEngineProviderOptions))
providers.register('sge', (options) => new GridEngineProvider(options as GridEngineProviderOptions))
providers.register('slurm', (options) => new SlurmProvider(options))
providers.register('pbspro', (options) => new PBSProProvider(options))
providers.register('pbs', (options) => new PBSProProvider(options))

export const providerOption: Check<ExecutionProvider> = providers.option

/** Lets plain-object configs name a provider type (`provider: { type: 'slurm', ... }`). */
export function registerProviderType(type: string, factory: ProviderFactory): void {
  providers.register(type, factory)
}
