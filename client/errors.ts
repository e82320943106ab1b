/**
 * Every promise of the client rejects with a `StagegateError` (shared/errors.ts). Server
 * refusals keep the server's code; local failures are mapped to the closest code and keep the
 * original error as `cause` (e.g. a getUserMedia `NotAllowedError` becomes FORBIDDEN).
 */
import { StagegateError, isErrorCode, type ErrorCode } from '../shared/errors.js';

export function stagegateError(code: ErrorCode, message: string, cause?: unknown): StagegateError {
  const err = new StagegateError(code, message);
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, configurable: true, writable: true });
  return err;
}

/** Local error → StagegateError. A StagegateError passes through unchanged. */
export function toStagegateError(err: unknown, context?: string): StagegateError {
  if (err instanceof StagegateError) return err;
  const name = err instanceof Error || isDomException(err) ? (err as { name: string }).name : '';
  const message = err instanceof Error || isDomException(err) ? (err as { message: string }).message : String(err);
  const prefix = context ? `${context}: ` : '';
  return stagegateError(codeFor(name), `${prefix}${message}`, err);
}

/** The `{ code, message }` a server attached to a refused connection (`connect_error`.data). */
export function wireErrorOf(value: unknown): { code: ErrorCode; message: string } | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { code, message } = value as { code?: unknown; message?: unknown };
  if (!isErrorCode(code)) return undefined;
  return { code, message: typeof message === 'string' ? message : code };
}

function codeFor(name: string): ErrorCode {
  switch (name) {
    case 'InvalidStateError':
      return 'INVALID_STATE';
    case 'UnsupportedError':
    case 'NotSupportedError':
    case 'OverconstrainedError':
      return 'UNSUPPORTED';
    case 'NotFoundError':
      return 'NOT_FOUND';
    case 'NotAllowedError':
    case 'SecurityError':
      return 'FORBIDDEN';
    case 'TypeError':
      return 'INVALID_REQUEST';
    default:
      return 'INTERNAL';
  }
}

function isDomException(err: unknown): boolean {
  return typeof DOMException !== 'undefined' && err instanceof DOMException;
}
