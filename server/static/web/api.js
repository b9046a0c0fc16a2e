// The GraphQL API: queries and mutations as HTTP POSTs to /graphql, subscriptions over its
// websocket (graphql-transport-ws, through the graphql-ws client). Nothing else is called.
//
// When the server has API keys, the key the person types is kept in this browser's
// localStorage only, and sent as `Authorization: Bearer <key>`: as an HTTP header, and in the
// websocket's `connection_init` payload (a browser cannot set headers on a websocket).

import { createClient } from './vendor/client.js';

const KEY_ITEM = 'candlegraph.apiKey';

/** The errors of a GraphQL response, as the API stated them: each has a `message` and
 * `extensions` with a `code` (BAD_USER_INPUT, NOT_FOUND, UNAUTHENTICATED, RATE_LIMITED,
 * SLOW_CONSUMER, INTERNAL) and, for a bad argument, the `argument` it names. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
  }

  has(code) {
    return this.errors.some((e) => e.extensions?.code === code);
  }
}

/** graphql-ws reports a failed subscription as GraphQL errors, a CloseEvent or an Error. */
function asApiError(failure) {
  if (failure instanceof ApiError) return failure;
  if (Array.isArray(failure)) return new ApiError(failure);
  if (failure && typeof failure.code === 'number') {
    // 4403 is the server refusing the connection's key (graphql-transport-ws "Forbidden").
    const code = failure.code === 4403 ? 'UNAUTHENTICATED' : 'DISCONNECTED';
    const why = failure.code === 4403 ? 'the API key was refused' : 'the connection closed';
    return new ApiError([{ message: `${why} (${failure.code} ${failure.reason || ''})`.trim(),
      extensions: { code } }]);
  }
  return new ApiError([{ message: String(failure?.message ?? failure),
    extensions: { code: 'DISCONNECTED' } }]);
}

export class Api extends EventTarget {
  constructor(endpoint = '/graphql') {
    super();
    this.endpoint = new URL(endpoint, location.href);
    this.socket = null;
  }

  get key() {
    return localStorage.getItem(KEY_ITEM) ?? '';
  }

  /** Keep `key` (or forget it when empty); the websocket reconnects with it. */
  setKey(key) {
    if (key) localStorage.setItem(KEY_ITEM, key);
    else localStorage.removeItem(KEY_ITEM);
    this.socket?.terminate();
    this.socket?.dispose();
    this.socket = null;
    this.dispatchEvent(new Event('key'));
  }

  /** Run a query or mutation; resolves to its `data`, or throws an ApiError. */
  async request(query, variables = {}) {
    const headers = { 'content-type': 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    let body;
    try {
      const response = await fetch(this.endpoint, {
        method: 'POST', headers, body: JSON.stringify({ query, variables }),
      });
      body = await response.json();
    } catch (failure) {
      throw new ApiError([{ message: `the server did not answer: ${failure.message}`,
        extensions: { code: 'DISCONNECTED' } }]);
    }
    if (body.errors?.length) throw this.#noticed(new ApiError(body.errors));
    return body.data;
  }

  /** Start a subscription; `next` gets each result's data. Returns a function that ends it.
   * A failure (GraphQL errors, or the socket closing) ends it with `error(ApiError)`: the
   * caller decides whether and how to subscribe again (see live.js). */
  subscribe(query, variables, { next, error, complete = () => {} }) {
    this.socket ??= createClient({
      url: this.endpoint.href.replace(/^http/, 'ws'),
      connectionParams: () => (this.key ? { Authorization: `Bearer ${this.key}` } : {}),
      retryAttempts: 0, // each caller resubscribes itself, with what it has already seen
      keepAlive: 10_000,
    });
    let ended = false;
    const stop = this.socket.subscribe({ query, variables }, {
      next: (result) => {
        if (ended) return;
        if (result.errors?.length) {
          ended = true;
          stop();
          error(this.#noticed(new ApiError(result.errors)));
        } else {
          next(result.data);
        }
      },
      error: (failure) => {
        if (!ended) error(this.#noticed(asApiError(failure)));
        ended = true;
      },
      complete: () => {
        if (!ended) complete();
        ended = true;
      },
    });
    return () => {
      ended = true;
      stop();
    };
  }

  #noticed(apiError) {
    if (apiError.has('UNAUTHENTICATED')) {
      this.dispatchEvent(new CustomEvent('unauthenticated', { detail: apiError.message }));
    }
    return apiError;
  }
}
