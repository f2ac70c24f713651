import type { ErrorCode } from '../../protocol/errors.ts'

/**
 * Why something failed, as a code:
 * - a §2 error code the server sent (`["error", code, detail]`),
 * - `wrong_project` / `wrong_secret`: the handshake was refused (§3),
 * - `refused`: nothing listens there, `timeout`: the server did not answer in time,
 * - `closed`: the connection ended (the server left, or `close()` was called),
 * - `bad_reply`: the server sent something the contract does not allow there.
 */
export type ClientErrorCode = ErrorCode | 'no_such_folder' | 'wrong_project' | 'wrong_secret' | 'refused' | 'timeout' | 'closed' | 'bad_reply'

/** Every rejection of the SDK is one of these. */
export class ClientError extends Error {
  constructor (readonly code: ClientErrorCode, readonly detail: string) {
    super(`${code}: ${detail}`)
    this.name = 'ClientError'
  }
}

/** A request the server answered with `["error", code, detail]` (then `"yours"`). */
export class RequestError extends ClientError {
  constructor (code: ErrorCode, detail: string, readonly request: string) {
    super(code, detail)
    this.name = 'RequestError'
  }
}
