import t from 'tap'
import { ErrorCode } from 'tsflow'
import { connectorFromConfig, LocalConnector } from 'tsflow/proxy'
import { connectorConformance } from './connector-conformance.js'

connectorConformance(t, {
  name: 'local',
  create: () => new LocalConnector(),
  extra: async (t, c) => {
    const other = new LocalConnector()
    const key = await c.put(Uint8Array.of(1))
    t.notOk(await other.exists(key), 'two unnamed connectors do not share objects')
    t.equal((c as LocalConnector).size, 1)
    await c.evict(key)
    t.equal((c as LocalConnector).size, 0, 'size counts what is stored')
  },
})

t.test('connector registry errors name the option path', async (t) => {
  t.throws(() => connectorFromConfig({ type: 'nope' }), { code: ErrorCode.CONFIG, message: /connector\.type.*'local'.*'file'/ })
  t.throws(() => connectorFromConfig({ type: 'local', nmae: 'x' }), { message: /did you mean 'name'/ })
})
