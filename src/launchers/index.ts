import type { Check } from '../util/schema.js'
import { PluginRegistry } from '../util/registry.js'
import { LAUNCHER_TYPES, type Launcher, type LauncherType } from './base.js'
import {
  AprunLauncher,
  JsrunLauncher,
  MpiExecLauncher,
  MpiRunLauncher,
  SimpleLauncher,
  SingleNodeLauncher,
  SrunLauncher,
  WrappedLauncher,
  type WrappedLauncherOptions,
} from './launchers.js'

export { LAUNCHER_TYPES, type Launcher, type LauncherType } from './base.js'
export * from './launchers.js'
export { rankPrelude, type RankSources } from './common.js'
export { shellQuote } from './shell.js'

function isLauncher(value: unknown): value is Launcher {
  return typeof value === 'object' && value !== null && typeof (value as Launcher).wrap === 'function'
}

/**
 * The `launcher` option of a provider: a Launcher object, a type name (`'srun'`), or a plain
 * object with a type and that launcher's options (`{ type: 'srun', overrides: '--exclusive' }`).
 */
export const launchers = new PluginRegistry<Launcher>({
  what: 'a launcher (e.g. new SrunLauncher())',
  isInstance: isLauncher,
  validate: (launcher, path) => launcher.validate?.(path),
  acceptsName: true,
})
// Factories take the raw options; the registry then calls validate(path), which checks them and
// names a bad one by its config path.
const builtIn: Record<LauncherType, (options: Record<string, unknown>) => Launcher> = {
  single_node: () => new SingleNodeLauncher(),
  simple: () => new SimpleLauncher(),
  wrapped: (options) => new WrappedLauncher(options as unknown as WrappedLauncherOptions),
  srun: (options) => new SrunLauncher(options),
  mpiexec: (options) => new MpiExecLauncher(options),
  mpirun: (options) => new MpiRunLauncher(options),
  aprun: (options) => new AprunLauncher(options),
  jsrun: (options) => new JsrunLauncher(options),
}
for (const type of LAUNCHER_TYPES) launchers.register(type, builtIn[type])

export const launcherOption: Check<Launcher> = launchers.option

/** Lets configs name a launcher type (`launcher: 'mine'` or `{ type: 'mine', ... }`). */
export function registerLauncherType(type: string, factory: (options: Record<string, unknown>) => Launcher): void {
  launchers.register(type, factory)
}
