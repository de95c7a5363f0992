import { pluginOption, type Check, type PluginKind } from './schema.js'

/** How a plug-in type is built from its plain-object config, and how its options are checked. */
export interface PluginType<T> {
  /** builds the plug-in from `{ type, ...options }` (the options are checked by `validate`) */
  create(options: Record<string, unknown>): T
  /** checks the plug-in's options; errors name `path.option`. Default: the kind's validate. */
  validate?(instance: T, path: string): void
}

/**
 * The one plug-in registry: executors, providers and launchers each have an instance. A plug-in
 * registers its type name with how to build it and check its options; plain-object configs
 * (`{ type: 'htex' }`, `provider: { type: 'local' }`) resolve through it, and `option` is the
 * config check that accepts an instance or such an object.
 */
export class PluginRegistry<T> {
  private readonly types = new Map<string, PluginType<T>>()
  /** the config check for an option taking this kind of plug-in */
  readonly option: Check<T>

  constructor(kind: Pick<PluginKind<T>, 'what' | 'isInstance' | 'validate' | 'acceptsName'>) {
    this.option = pluginOption<T>({
      ...kind,
      types: () => this.names(),
      create: (type, options) => this.types.get(type)!.create(options),
      validate: (instance, path) => {
        const type = (instance as { type?: unknown }).type
        const plugin = typeof type === 'string' ? this.types.get(type) : undefined
        if (plugin?.validate) plugin.validate(instance, path)
        else kind.validate(instance, path)
      },
    })
  }

  /** Registers (or replaces) a type; a bare function is the `create` of a plug-in without its own validate. */
  register(type: string, plugin: PluginType<T> | ((options: Record<string, unknown>) => T)): void {
    this.types.set(type, typeof plugin === 'function' ? { create: plugin } : plugin)
  }

  names(): string[] {
    return [...this.types.keys()]
  }
}
