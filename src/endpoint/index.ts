// `tsflow/endpoint`: the server side of endpoints (docs/endpoints.md), for the daemon, the CLI and tests.
export { EndpointServer, runEndpoint, type EndpointServerOptions, type RunEndpointOptions } from './server.js'
export { loadEndpointConfig, resolveEndpointConfig, writeDefaultEndpointConfig, DEFAULT_ENDPOINT_CONFIG, type EndpointConfig } from './config.js'
export { addAllowedClient, ensureClientKeys, ensureEndpointKeys, isCurveKey, readAllowedClients, removeAllowedClient, type EndpointKeys } from './keys.js'
