/** §2: every error code of the contract. */
export const ERROR_CODES = [
  'protocol', 'bad_handshake', 'bad_request', 'unknown_request', 'no_such_user',
  'bad_path', 'would_deadlock', 'relay_failed', 'relay_timeout', 'busy', 'no_such_folder'
] as const

export type ErrorCode = typeof ERROR_CODES[number]

/** §2: `["error", code, detail]`. */
export type ErrorMessage = readonly ['error', ErrorCode, string]

export function errorMessage (code: ErrorCode, detail: string): ErrorMessage {
  return ['error', code, detail]
}

export function isErrorCode (value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value)
}

/** The outcome of validating user input: a typed value or a precise refusal. */
export type Validated<T> =
  | { readonly ok: true, readonly value: T }
  | { readonly ok: false, readonly code: ErrorCode, readonly detail: string }

export const accept = <T>(value: T): Validated<T> => ({ ok: true, value })
export const refuse = <T = never>(code: ErrorCode, detail: string): Validated<T> => ({ ok: false, code, detail })
