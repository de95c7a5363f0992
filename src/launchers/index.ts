import { ConfigError } from '../errors.js'
import { isPlainObject, join, type Check } from '../config/schema.js'
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

function isLauncherType(value: unknown): value is LauncherType {
  return typeof value === 'string' && (LAUNCHER_TYPES as readonly string[]).includes(value)
}

/**
 * The `launcher` option of a provider: a Launcher object, a type name (`'srun'`), or a plain
 * object with a type and that launcher's options (`{ type: 'srun', overrides: '--exclusive' }`).
 */
export const launcherOption: Check<Launcher> = (value, path) => {
  const known = LAUNCHER_TYPES.map((t) => `'${t}'`).join(', ')
  let launcher: Launcher
  if (isLauncher(value)) {
    launcher = value
  } else if (isLauncherType(value)) {
    launcher = create(value, {})
  } else if (isPlainObject(value)) {
    if (!isLauncherType(value.type)) {
      throw new ConfigError(join(path, 'type'), `must be one of ${known} (got ${JSON.stringify(value.type)})`)
    }
    launcher = create(value.type, value)
  } else {
    throw new ConfigError(path, `must be a launcher (e.g. new SrunLauncher()), one of ${known}, or { type, ...options }`)
  }
  launcher.validate?.(path)
  return launcher
}
