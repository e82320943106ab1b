/**
 * The client end of the wire contract (shared/protocol.ts) over socket.io-client.
 *
 * - `request(method, data)` sends `socket.emit(method, data, ack)` and resolves with the ack's
 *   `data`, typed by `Responses[method]`. A refusal rejects with `StagegateError(code, message)`
 *   carrying the server's code. No answer within `requestTimeoutMs` rejects with TIMEOUT; a
 *   disconnect rejects every pending request with DISCONNECTED.
 * - `on(name, listener)` subscribes to one notification, typed by `Notifications[name]`.
 *   Notifications are delivered in the order the server sent them, interleaved with acks as sent.
 * - One Signaling = one socket.io connection at a time (`forceNew`, no socket.io reconnection):
 *   after a drop the server wants a new `joinRoom` anyway, so the meeting reconnects itself with
 *   `reconnect()`, which opens a new socket with the current token (see `setToken`). Listeners (`on`, `onDisconnect`)
 *   stay subscribed across sockets; requests pending on the old socket reject with DISCONNECTED.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { StagegateError } from '../shared/errors.js';
import type {
  BatchNotification,
  Ack,
  NotificationName,
  Notifications,
  RequestData,
  RequestMethod,
  Responses,
  WireError,
} from '../shared/protocol.js';
import { stagegateError, wireErrorOf } from './errors.js';

export type SocketConnectOptions = Partial<ManagerOptions & SocketOptions>;

export interface SignalingOptions {
  /**
   * Server base URL, e.g. http://127.0.0.1:3000; or the URLs of several nodes of a cluster: an
   * unreachable node is skipped for the next one (at connect and on every reconnect attempt).
   */
  url: string | readonly string[];
  /** Participant token (JWT) minted by the server. */
  token: string;
  /** When given, the server refuses the connection unless the token is for this room. */
  roomId?: string | undefined;
  /** Merged over the defaults `{ transports: ['websocket'], reconnection: false, forceNew: true }`. */
  socketOptions?: SocketConnectOptions | undefined;
  /** Per request; default 10 000 ms. */
  requestTimeoutMs?: number | undefined;
}

/** Methods whose payload may be left out (their schema is an optional empty object). */
export type RequestArgs<M extends RequestMethod> =
  undefined extends RequestData<M> ? [data?: RequestData<M>] : [data: RequestData<M>];

interface Pending {
  reject(err: StagegateError): void;
  timer: ReturnType<typeof setTimeout>;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Replaced at build time by Vite's `define`: `true` in test builds (vitest, the browser tests'
 * bundle), `false` in the shipped demo pages, whose minifier then drops the test hooks. Where it
 * is not defined at all (tsx, an app's own bundler) there are no test hooks either.
 */
declare const __STAGEGATE_TEST_HOOKS__: boolean | undefined;

export class Signaling {
  #socket: Socket;
  readonly #opts: SignalingOptions;
  readonly #urls: readonly string[];
  /** The node connected to, or tried next (advances past an unreachable one). */
  #urlIndex = 0;
  /** The token the next connection presents (the server's `tokenRefreshed` replaces it). */
  #token: string;
  readonly #timeoutMs: number;
  readonly #pending = new Set<Pending>();
  /** Notifications received while held, delivered in order by `release()`. */
  #held: Array<[string, unknown]> | undefined;
  readonly #listeners = new Map<string, Set<(data: unknown) => void>>();
  readonly #disconnectListeners = new Set<(reason: string) => void>();
  /** Rejects the connection attempt in progress (on `close()` or a newer `reconnect()`). */
  #abortOpen: ((err: StagegateError) => void) | undefined;
  #closed = false;
  /** Our user id, from the token (a JWT's `sub`): `batch` items name the user they skip. */
  readonly #userId: string | undefined;

  private constructor(opts: SignalingOptions) {
    this.#opts = opts;
    this.#urls = typeof opts.url === 'string' ? [opts.url] : opts.url;
    if (this.#urls.length === 0) throw new StagegateError('INVALID_REQUEST', 'no server URL');
    this.#token = opts.token;
    this.#userId = subjectOf(opts.token);
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#socket = this.#createSocket();
  }

  /**
   * Opens the connection. A refused connection (bad token, wrong room, unknown room) rejects
   * with the server's code (UNAUTHORIZED, NOT_FOUND...); an unreachable server with DISCONNECTED.
   */
  static async connect(opts: SignalingOptions): Promise<Signaling> {
    const signaling = new Signaling(opts);
    for (let attempt = 1; ; attempt++) {
      try {
        await signaling.#open();
        return signaling;
      } catch (err) {
        // an unreachable node: the next one, once each
        const unreachable = err instanceof StagegateError && err.code === 'DISCONNECTED';
        if (!unreachable || attempt >= signaling.#urls.length || signaling.#closed) {
          signaling.close();
          throw err;
        }
        signaling.#socket = signaling.#createSocket();
      }
    }
  }

  /**
   * Replaces the connection by a new one with the current token (after a drop; the old socket is
   * let go, its pending requests reject with DISCONNECTED). Notifications are held from here:
   * the caller re-joins, applies the snapshot, then calls `release()`. Rejects like `connect()`.
   * The disconnect listeners are not called for the old socket (the caller knows); they are for
   * the new one once it is connected.
   */
  async reconnect(): Promise<void> {
    if (this.#closed) throw new StagegateError('DISCONNECTED', 'the connection was closed');
    const old = this.#socket;
    this.#socket = this.#createSocket();
    this.#held = [];
    this.#abortOpen?.(new StagegateError('DISCONNECTED', 'a newer connection attempt replaced this one'));
    this.#rejectAll('the connection was replaced');
    old.disconnect();
    await this.#open();
  }

  /** The node URL in use (or tried next). */
  get #url(): string {
    return this.#urls[this.#urlIndex % this.#urls.length]!;
  }

  /** The token the next connection (a reconnect) will present. */
  get token(): string {
    return this.#token;
  }

  /** Present `token` from the next connection on. A token for another user is refused (INVALID_REQUEST). */
  setToken(token: string): void {
    if (subjectOf(token) !== this.#userId) {
      throw new StagegateError('INVALID_REQUEST', 'the token is for another user');
    }
    this.#token = token;
  }

  /**
   * Ends the current connection as a network drop would ('transport close'), so that its owner
   * reconnects (with the current token). Used to switch to a new token at once.
   */
  cycle(): void {
    this.#socket.io.engine?.transport?.close();
  }

  /**
   * @internal Test builds only (see `__STAGEGATE_TEST_HOOKS__`): closes the underlying transport
   * (the WebSocket) without a goodbye, as a network failure does. socket.io reports
   * 'transport close', on both ends.
   */
  declare dropTransportForTests?: () => void;

  static {
    if (typeof __STAGEGATE_TEST_HOOKS__ !== 'undefined' && __STAGEGATE_TEST_HOOKS__) {
      Signaling.prototype.dropTransportForTests = function (this: Signaling) {
        this.#socket.io.engine?.transport?.close();
      };
    }
  }

  #createSocket(): Socket {
    const opts = this.#opts;
    const auth: Record<string, string> = { token: this.#token };
    if (opts.roomId !== undefined) auth.roomId = opts.roomId;
    const socket = io(this.#url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      ...opts.socketOptions,
      auth,
      autoConnect: false,
    });
    const receive = (event: string, data: unknown) => {
      // goodbye at once even while held: it decides how the disconnect that follows is handled
      if (this.#held && event !== 'goodbye') this.#held.push([event, data]);
      else this.#dispatch(event, data);
    };
    socket.onAny((event: string, data: unknown) => {
      if (socket !== this.#socket) return; // a replaced socket
      if (event !== 'batch') return receive(event, data);
      // the room's notifications of one server turn, in order; skip those not meant for us
      for (const [name, item, except] of (data as BatchNotification).items) {
        if (except !== this.#userId) receive(name, item);
      }
    });
    socket.on('disconnect', (reason: string) => {
      if (socket !== this.#socket) return;
      this.#rejectAll(`disconnected (${reason})`);
      for (const listener of [...this.#disconnectListeners]) {
        try {
          listener(reason);
        } catch (err) {
          console.error('stagegate: a disconnect listener threw', err);
        }
      }
    });
    return socket;
  }

  #open(): Promise<void> {
    const socket = this.#socket;
    const url = this.#url;
    return new Promise<void>((resolve, reject) => {
      const settle = () => {
        socket.off('connect', onConnect);
        socket.off('connect_error', onError);
        if (this.#abortOpen === abort) this.#abortOpen = undefined;
      };
      const onConnect = () => {
        settle();
        resolve();
      };
      const onError = (err: Error & { data?: unknown }) => {
        settle();
        socket.disconnect();
        const wire = wireErrorOf(err.data);
        // unreachable, or failing (a node shutting down): the next attempt goes to the next node
        if (!wire || wire.code === 'INTERNAL') this.#urlIndex++;
        reject(
          wire
            ? new StagegateError(wire.code, wire.message)
            : stagegateError('DISCONNECTED', `cannot connect to ${url}: ${err.message}`, err),
        );
      };
      const abort = (err: StagegateError) => {
        settle();
        socket.disconnect();
        reject(err);
      };
      this.#abortOpen = abort;
      socket.once('connect', onConnect);
      socket.once('connect_error', onError);
      socket.connect();
    });
  }

  get connected(): boolean {
    return !this.#closed && this.#socket.connected;
  }

  /** The socket.io id of this connection (for logs). */
  get id(): string | undefined {
    return this.#socket.id;
  }

  request<M extends RequestMethod>(method: M, ...args: RequestArgs<M>): Promise<Responses[M]> {
    if (!this.connected) {
      return Promise.reject(new StagegateError('DISCONNECTED', `${method}: not connected`));
    }
    // Always an object: socket.io would turn a missing payload into null, which the schema refuses.
    const data = args[0] ?? {};
    return new Promise<Responses[M]>((resolve, reject) => {
      const pending: Pending = {
        reject,
        timer: setTimeout(() => {
          this.#pending.delete(pending);
          reject(stagegateError('TIMEOUT', `${method}: no answer within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs),
      };
      this.#pending.add(pending);
      this.#socket.emit(method, data, (ack: unknown) => {
        if (!this.#pending.delete(pending)) return; // timed out or disconnected already
        clearTimeout(pending.timer);
        if (!isAck(ack)) reject(stagegateError('INTERNAL', `${method}: malformed answer from the server`));
        else if (ack.ok) resolve(ack.data as Responses[M]);
        else reject(wireToError(ack.error));
      });
    });
  }

  /** Subscribes to one notification; returns the function that unsubscribes. */
  on<N extends NotificationName>(name: N, listener: (data: Notifications[N]) => void): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    const registered = set;
    registered.add(listener as (data: unknown) => void);
    return () => {
      registered.delete(listener as (data: unknown) => void);
    };
  }

  /**
   * Queue notifications instead of delivering them, until `release()`. `joinMeeting` holds them
   * while `joinRoom` is in flight: the server may notify before it acks, and the state those
   * notifications change only exists once the snapshot is applied.
   */
  hold(): void {
    this.#held ??= [];
  }

  /** Deliver what was queued by `hold()`, in order, then deliver live again. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    for (const [name, data] of held ?? []) this.#dispatch(name, data);
  }

  /**
   * Called when the current connection goes away (server, network, or `close()`), with
   * socket.io's reason: once per connection (see `reconnect()`).
   */
  onDisconnect(listener: (reason: string) => void): () => void {
    this.#disconnectListeners.add(listener);
    return () => {
      this.#disconnectListeners.delete(listener);
    };
  }

  /** Disconnects; pending requests reject. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abortOpen?.(new StagegateError('DISCONNECTED', 'the connection was closed'));
    this.#rejectAll('the connection was closed');
    this.#socket.disconnect();
  }

  #dispatch(name: string, data: unknown): void {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        listener(data);
      } catch (err) {
        console.error(`stagegate: a "${name}" notification listener threw`, err);
      }
    }
  }

  #rejectAll(why: string): void {
    for (const pending of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new StagegateError('DISCONNECTED', why));
    }
    this.#pending.clear();
  }
}

function isAck(value: unknown): value is Ack<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { ok?: unknown; error?: unknown };
  if (v.ok === true) return true;
  return v.ok === false && wireErrorOf(v.error) !== undefined;
}

/** The `sub` claim of a JWT, read without verifying it (the server did). */
function subjectOf(token: string): string | undefined {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/** A refusal from the server as a StagegateError, keeping its details (COOLING_DOWN: `retryAfterMs`). */
function wireToError(e: WireError): StagegateError {
  const retryAfterMs = e.details?.retryAfterMs ?? e.retryAfterMs;
  return typeof retryAfterMs === 'number'
    ? new StagegateError(e.code, e.message, { retryAfterMs })
    : new StagegateError(e.code, e.message);
}
