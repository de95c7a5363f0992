import { pluginOption, type Check } from '../util/schema.js'
import { LAUNCHER_TYPES, type Launcher, type LauncherType } from './base.js'
import { MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher } from './launchers.js'

export { LAUNCHER_TYPES, type Launcher, type LauncherType } from './base.js'
export {
  MpiExecLauncher,
  SimpleLauncher,
  SingleNodeLauncher,
  SrunLauncher,
  type MpiExecLauncherOptions,
  type SrunLauncherOptions,
} from './launchers.js'
export { shellQuote } from './shell.js'

function create(type: LauncherType, options: Record<string, unknown>): Launcher {
  switch (type) {
    case 'single_node':
      return new SingleNodeLauncher()
    case 'simple':
      return new SimpleLauncher()
    case 'srun':
      return new SrunLauncher(options)
    case 'mpiexec':
      return new MpiExecLauncher(options)
  }
}

function isLauncher(value: unknown): value is Launcher {
  return typeof value === 'object' && value !== null && typeof (value as Launcher).wrap === 'function'
}


/**
 * The `launcher` option of a provider: a Launcher object, a type name (`'srun'`), or a plain
 * object with a type and that launcher's options (`{ type: 'srun', overrides: '--exclusive' }`).
 */
export const launcherOption: Check<Launcher> = pluginOption<Launcher>({
  what: 'a launcher (e.g. new SrunLauncher())',
  isInstance: isLauncher,
  types: () => LAUNCHER_TYPES,
  create: (type, options) => create(type as LauncherType, options),
  validate: (launcher, path) => launcher.validate?.(path),
  acceptsName: true,
})
