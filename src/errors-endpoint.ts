/**
 * The errors of endpoints (long-lived interchanges serving remote clients, `tsflow endpoint`),
 * part of the one error family errors.ts exports.
 */
import { ErrorCode, TsflowError, type TsflowErrorOptions } from './errors-base.js'

/** No endpoint of that name is configured or running here; names the name and the directory looked in. */
export class EndpointNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.ENDPOINT_NOT_FOUND]
  readonly endpoint: string
  constructor(endpoint: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.ENDPOINT_NOT_FOUND, `endpoint ${endpoint}: ${message}`, options)
    this.endpoint = endpoint
  }
}

/** An endpoint did not answer within the bound (connect, hello, or silence while tasks were outstanding); names its address. */
export class EndpointUnreachable extends TsflowError {
  static override readonly codes = [ErrorCode.ENDPOINT_UNREACHABLE]
  readonly endpoint: string
  readonly address: string
  constructor(endpoint: string, address: string, message: string, options?: TsflowErrorOptions) {
    // An endpoint given by address is named by it: say it once.
    super(ErrorCode.ENDPOINT_UNREACHABLE, endpoint === address ? `endpoint ${address}: ${message}` : `endpoint ${endpoint} at ${address}: ${message}`, options)
    this.endpoint = endpoint
    this.address = address
  }
}

/** An endpoint refused this client: a key not on its allow-list, a version mismatch, a bad request; names the reason. */
export class EndpointRefused extends TsflowError {
  static override readonly codes = [ErrorCode.ENDPOINT_REFUSED]
  readonly endpoint: string
  constructor(endpoint: string, reason: string, options?: TsflowErrorOptions) {
    super(ErrorCode.ENDPOINT_REFUSED, `endpoint ${endpoint} refused this client: ${reason}`, options)
    this.endpoint = endpoint
  }
}

/** The endpoint stopped (or is stopping) while this task was queued or running there. */
export class EndpointStopped extends TsflowError {
  static override readonly codes = [ErrorCode.ENDPOINT_STOPPED]
  readonly endpoint: string
  constructor(endpoint: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.ENDPOINT_STOPPED, `endpoint ${endpoint}: ${message}`, options)
    this.endpoint = endpoint
  }
}
