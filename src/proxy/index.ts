// tsflow/proxy: the data layer (docs/proxy.md). Loaded by remote processes too: no kernel imports.
export { connectors, connectorFromConfig, isConnector, isObjectKey, keyText } from './connector.js'
export type { Connector, ConnectorConfig, ObjectKey, PutHints } from './connector.js'
export { LocalConnector, type LocalConnectorOptions } from './local.js'
export { FileConnector, type FileConnectorOptions } from './file.js'
export { ShmConnector, SHM_NAME_PREFIX, type ShmCleanupOptions, type ShmConnectorOptions } from './shm.js'
export { MultiConnector, type MultiChild, type MultiConnectorOptions, type MultiPolicy } from './multi.js'
export { registerSerializer, serializerNames, type Serializer } from './serializer.js'
export { Store, getStore, openStores, registerStore, unregisterStore } from './store.js'
export type { PutOptions, StoreConfig, StoreOptions } from './store.js'
export { extract, factoryOf, isProxiable, isProxy, isResolved, resolve, type ProxyFactory } from './proxy.js'
export { StoreMetrics, type Metrics, type MetricsKey, type TimeStats } from './metrics.js'
export { getKey, getOrCreateStore, getStoreOf, lockedProxy, ProxyLocker, resolveAsync, storeRegistration } from './utils.js'
export type { ProxyOptions } from './store.js'
export { ProxyFuture, type FutureOptions } from './store.js'
export { ContextLifetime, LeaseLifetime, StaticLifetime, isLifetime, type Lifetime, type LeaseLifetimeOptions } from './lifetimes.js'
export {
  borrow,
  borrowCount,
  borrowsIn,
  clone,
  dispose,
  intoOwned,
  isUsable,
  mutBorrow,
  ownedProxy,
  ownershipOf,
  release,
  releaseWhenSettled,
  update,
  type Borrow,
  type OwnedProxy,
  type RefMutProxy,
  type RefProxy,
} from './ownership.js'
export type { CloseOptions, GetOptions, OwnedOptions } from './store.js'
export type { ProxyKind } from './proxy.js'
export { RedisConnector, type RedisConnectorOptions } from './redis.js'
export { SyncBridge, withSyncGet, type SyncBridgeOptions } from './sync-bridge.js'
export { ZmqConnector, type ZmqConnectorOptions, type ZmqKey } from './zmq.js'
