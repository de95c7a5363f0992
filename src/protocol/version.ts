import { createRequire } from 'node:module'

/** Bumped whenever the shape of any message in protocol/ changes incompatibly. */
export const PROTOCOL_VERSION = 1

/** The tsflow package version, read from package.json (dist/protocol -> package root). */
export const TSFLOW_VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version
