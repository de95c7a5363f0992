// tsflow/proxy: the data layer (docs/proxy.md). Loaded by remote processes too: no kernel imports.
export { connectors, connectorFromConfig, isConnector, isObjectKey, keyText } from './connector.js'
export type { Connector, ConnectorConfig, ObjectKey } from './connector.js'
export { LocalConnector, type LocalConnectorOptions } from './local.js'
export { FileConnector, type FileConnectorOptions } from './file.js'
export { registerSerializer, serializerNames, type Serializer } from './serializer.js'
export { Store, getStore, registerStore, unregisterStore } from './store.js'
export type { PutOptions, StoreConfig, StoreOptions } from './store.js'
