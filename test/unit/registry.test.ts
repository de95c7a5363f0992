// The one plug-in registry behind executors, providers and launchers in plain-object configs.
import t from 'tap'
import { ConfigError, HighThroughputExecutor, LocalProvider, PluginRegistry, SimpleLauncher, registerLauncherType, registerProviderType, resolveConfig } from 'tsflow'

t.test('a registered provider type resolves inside an executor spec, validated at its path', async (t) => {
  let created: Record<string, unknown> | undefined
  registerProviderType('test-local', (options) => {
    created = options
    const { type: _type, ...rest } = options
    return new LocalProvider(rest)
  })
  const config = resolveConfig({ executors: [{ type: 'htex', provider: { type: 'test-local', maxBlocks: 2 } }] })
  t.ok(config.executors[0] instanceof HighThroughputExecutor)
  t.same(created, { type: 'test-local', maxBlocks: 2 }, 'the factory gets the plain-object config')
  t.throws(
    () => resolveConfig({ executors: [{ type: 'htex', provider: { type: 'test-local', maxBlocks: -1 } }] }),
    { name: 'ConfigError', path: 'executors[0].provider.maxBlocks' },
    "the provider's own check names the option path",
  )
})

t.test('a registered launcher type is accepted by name and as an object', async (t) => {
  registerLauncherType('test-plain', () => new SimpleLauncher())
  t.doesNotThrow(() => resolveConfig({ executors: [{ type: 'htex', provider: { type: 'local', launcher: 'test-plain' } }] }))
  t.doesNotThrow(() => resolveConfig({ executors: [{ type: 'htex', provider: { type: 'local', launcher: { type: 'test-plain' } } }] }))
  t.throws(
    () => resolveConfig({ executors: [{ type: 'htex', provider: { type: 'local', launcher: { type: 'nope' } } }] }),
    /executors\[0\]\.provider\.launcher\.type must be one of .*'test-plain'/,
  )
})

t.test('a plug-in type may bring its own options validator', async (t) => {
  interface Widget {
    type: string
    size: number
  }
  const widgets = new PluginRegistry<Widget>({
    what: 'a widget',
    isInstance: (value): value is Widget => typeof value === 'object' && value !== null && 'size' in value && 'type' in value,
    validate: () => {},
  })
  widgets.register('square', {
    create: (options) => ({ type: 'square', size: options.size as number }),
    validate: (widget, path) => {
      if (!(widget.size > 0)) throw new ConfigError(`${path}.size`, 'must be positive')
    },
  })
  t.same(widgets.names(), ['square'])
  t.same(widgets.option({ type: 'square', size: 2 }, 'w'), { type: 'square', size: 2 })
  t.throws(() => widgets.option({ type: 'square', size: 0 }, 'w'), { name: 'ConfigError', path: 'w.size' })
  t.throws(() => widgets.option({ type: 'round' }, 'w'), { name: 'ConfigError', path: 'w.type' })
})
