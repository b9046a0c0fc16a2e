// Live candles of one series, with nothing missed across a dropped connection.
//
// The `candles` subscription pushes every update of the series, forming and closed. When the
// socket drops (or the server ends the stream, e.g. SLOW_CONSUMER), this subscribes again
// with `since` set to the newest candle seen: the server first replays the stored candles
// from that bucket on, then goes live, with no gap and no duplicate at the seam. A replayed
// candle the chart already has replaces it in place. Errors that retrying cannot heal (a bad
// argument, an unknown market, a refused key) stop it.
//
// graphql-ws can retry by itself, but it would send the first `since` again: this module
// subscribes anew instead, with waits of 0.25 s doubling up to 5 s.

const CANDLES = `subscription Live($exchange: String!, $symbol: String!, $timeframe: String!,
    $since: DateTime) {
  candles(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, since: $since) {
    ts open high low close volume trades closed
  }
}`;

const FINAL = ['BAD_USER_INPUT', 'NOT_FOUND', 'UNAUTHENTICATED'];
const MAX_WAIT_MS = 5_000;

export class LiveCandles {
  /** `since`: the ISO start of the newest candle the caller already has (or null).
   * `onCandle(candle)` gets each update; `onState(state, error)` hears 'connecting', 'live',
   * 'reconnecting' and 'stopped'. */
  constructor(api, { exchange, symbol, timeframe, since, onCandle, onState = () => {} }) {
    this.api = api;
    this.series = { exchange, symbol, timeframe };
    this.since = since;
    this.onCandle = onCandle;
    this.onState = onState;
    this.subscriptions = 0; // how many times it has subscribed: 1 + the reconnects
    this.failures = 0;
    this.stopped = false;
  }

  start() {
    this.#subscribe();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.end?.();
    this.onState(this.state = 'stopped');
  }

  #subscribe() {
    this.subscriptions += 1;
    this.onState(this.state = 'connecting');
    this.end = this.api.subscribe(CANDLES, { ...this.series, since: this.since }, {
      next: ({ candles }) => {
        if (this.state !== 'live') this.onState(this.state = 'live');
        this.failures = 0;
        this.since = candles.ts;
        this.onCandle(candles);
      },
      error: (error) => this.#again(error),
      complete: () => this.#again(null),
    });
  }

  #again(error) {
    if (this.stopped) return;
    if (error && FINAL.some((code) => error.has(code))) {
      this.onState(this.state = 'stopped', error);
      return;
    }
    const wait = Math.min(MAX_WAIT_MS, 250 * 2 ** this.failures);
    this.failures += 1;
    this.onState(this.state = 'reconnecting', error);
    this.timer = setTimeout(() => this.#subscribe(), wait);
  }
}
