// Indicators on the price chart: the flow's stored ones (the `indicators` query), and any
// pandas-ta indicator computed on demand (the `indicator` query), each drawn on the price or
// in a pane of its own below it, and kept up to date as candles close.
//
// Stored names are `sma_20`, `bbands_20_2.upper`, `macd_12_26_9.hist`: one indicator with
// several outputs shares the part before the dot. pandas-ta names its outputs `SMA_50`,
// `BBL_20_2.0_2.0`, `MACDh_12_26_9`.

const SERIES = 'ts series { name values }';
const STORED = `query Stored($exchange: String!, $symbol: String!, $timeframe: String!,
    $names: [String!], $start: DateTime, $end: DateTime, $limit: Int) {
  indicators(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, names: $names,
    start: $start, end: $end, limit: $limit) { ${SERIES} }
}`;
const COMPUTED = `query Computed($exchange: String!, $symbol: String!, $timeframe: String!,
    $name: String!, $params: JSON, $start: DateTime, $end: DateTime, $limit: Int) {
  indicator(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, name: $name,
    params: $params, start: $start, end: $end, limit: $limit) { ${SERIES} }
}`;

/** Indicators whose values are prices, drawn over the candles (pandas-ta's "overlap"). */
export const ON_PRICE = new Set([
  'sma', 'ema', 'wma', 'hma', 'dema', 'tema', 'trima', 'kama', 'zlma', 'alma', 'vwma', 'rma',
  't3', 'bbands', 'kc', 'donchian', 'accbands', 'supertrend', 'vwap', 'midpoint', 'midprice',
  'hl2', 'hlc3', 'ohlc4', 'linreg', 'psar',
]);
/** Outputs of price indicators that are not prices: Bollinger bandwidth and %B. */
const NOT_PRICES = /^(BBB|BBP)_|\.(bandwidth|percent)$/;
const HISTOGRAMS = /^MACDh_|\.hist$/;
const PALETTE = ['#f7a21b', '#2962ff', '#e040fb', '#00bcd4', '#ffeb3b', '#8bc34a', '#ff7043'];
const REFRESH_MS = 1_000;

/** Stored names by indicator: 'bbands_20_2' → ['bbands_20_2.lower', ...]. */
export function storedGroups(names) {
  const groups = new Map();
  for (const name of names) {
    const dot = name.lastIndexOf('.');
    const hasOutput = dot > 0 && /^[a-z]+$/.test(name.slice(dot + 1));
    const group = hasOutput ? name.slice(0, dot) : name;
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(name);
  }
  return groups;
}

const iso = (seconds) => new Date(seconds * 1000).toISOString();

/** One indicator drawn on the chart: a stored group, or a pandas-ta function with params. */
class Plotted {
  constructor({ key, label, onPrice, query, variables, color }) {
    Object.assign(this, { key, label, onPrice, query, variables, color });
    this.points = new Map(); // output name → [{time, value}], oldest first
  }

  /** Fetch values for candles with start <= ts < end (ISO, either may be null). */
  async fetch(api, market, { start = null, end = null, limit }) {
    const data = await api.request(this.query, { ...market, ...this.variables, start, end, limit });
    const answer = data.indicators ?? data.indicator;
    const times = answer.ts.map((ms) => ms / 1000);
    return answer.series.map(({ name, values }) => [name, times
      .map((time, i) => ({ time, value: values[i] }))
      .filter((point) => point.value !== null)]);
  }

  /** Merge fetched outputs into what is held: newer values replace held ones of their time. */
  merge(outputs) {
    for (const [name, fresh] of outputs) {
      if (!fresh.length) {
        if (!this.points.has(name)) this.points.set(name, []);
        continue;
      }
      const held = this.points.get(name) ?? [];
      const first = fresh[0].time;
      const last = fresh.at(-1).time;
      this.points.set(name, [
        ...held.filter((p) => p.time < first), ...fresh, ...held.filter((p) => p.time > last),
      ]);
    }
  }

  newestTime() {
    return Math.max(...[...this.points.values()].map((points) => points.at(-1)?.time ?? -1));
  }
}

export class Indicators {
  constructor(api, chart) {
    this.api = api;
    this.chart = chart;
    this.market = null;
    this.plotted = new Map(); // key → Plotted
    this.refreshing = null;
  }

  /** Start over on another market (exchange, symbol, timeframe). */
  reset(market) {
    this.market = market;
    this.plotted.clear();
    this.chart.clearPlots();
  }

  /** The stored indicator groups of the market, from its newest stored values. */
  async available() {
    const data = await this.api.request(STORED, { ...this.market, limit: 1 });
    return storedGroups(data.indicators.series.map((s) => s.name));
  }

  addStored(group, names) {
    const onPrice = ON_PRICE.has(group.split('_')[0]);
    // Bollinger bandwidth and %B are kept in the store, but the bands are what a chart shows.
    const shown = onPrice ? names.filter((name) => !NOT_PRICES.test(name)) : names;
    return this.#add(new Plotted({
      key: group, label: group, onPrice, query: STORED, variables: { names: shown },
      color: this.#color(),
    }));
  }

  addComputed(name, params, onPrice) {
    const key = `${name}(${JSON.stringify(params ?? {})})`;
    return this.#add(new Plotted({
      key, label: key, onPrice, query: COMPUTED, variables: { name, params },
      color: this.#color(),
    }));
  }

  /** Fetch an indicator over the candles shown, then draw it; throws the API's errors. */
  async #add(plotted) {
    const bars = this.chart.candles.data();
    if (!bars.length) return;
    // Its place in the order (and so its pane) is taken now, whichever answer comes first.
    this.plotted.set(plotted.key, plotted);
    try {
      plotted.merge(await plotted.fetch(this.api, this.market, {
        start: iso(bars[0].time), limit: bars.length,
      }));
    } catch (error) {
      this.plotted.delete(plotted.key);
      throw error;
    }
    this.draw();
  }

  remove(key) {
    this.plotted.delete(key);
    this.draw();
  }

  /** Values for older candles now shown, with start <= ts < end (seconds). */
  async loadOlder(start, end, count) {
    await Promise.all([...this.plotted.values()].map(async (plotted) => {
      plotted.merge(await plotted.fetch(this.api, this.market, {
        start: iso(start), end: iso(end), limit: count,
      }));
    }));
    this.#setData();
  }

  /** After a candle closed: fetch what is new, at most once a second. */
  refreshSoon() {
    this.refreshing ??= new Promise((resolve) => setTimeout(resolve, REFRESH_MS))
      .then(() => this.refresh())
      .catch(() => {}) // the next closed candle tries again
      .finally(() => { this.refreshing = null; });
  }

  async refresh() {
    await Promise.all([...this.plotted.values()].map(async (plotted) => {
      const newest = plotted.newestTime();
      if (newest < 0) return;
      plotted.merge(await plotted.fetch(this.api, this.market, {
        start: iso(newest), limit: this.chart.candles.data().length,
      }));
    }));
    this.#setData();
  }

  /** Draw every output again (after one was added or removed). */
  draw() {
    this.chart.clearPlots();
    for (const plotted of this.plotted.values()) {
      for (const [name, points] of plotted.points) {
        const onPrice = plotted.onPrice && !NOT_PRICES.test(name);
        this.chart.plot(name, points, {
          pane: onPrice ? null : plotted.key,
          kind: HISTOGRAMS.test(name) ? 'histogram' : 'line',
          color: HISTOGRAMS.test(name) ? '#787b8680' : this.#shade(plotted.color, name),
          title: onPrice ? '' : name,
        });
      }
    }
  }

  #setData() {
    for (const plotted of this.plotted.values()) {
      for (const [name, points] of plotted.points) this.chart.plots.get(name)?.setData(points);
    }
  }

  #color() {
    return PALETTE[this.plotted.size % PALETTE.length];
  }

  /** Outputs of one indicator in one colour family: signal lines and bands a bit dimmer. */
  #shade(color, name) {
    return /signal|\.d$|lower|upper|^BB[LU]_|^MACDs_|^STOCHd_/.test(name) ? `${color}99` : color;
  }
}
