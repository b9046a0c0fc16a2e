// The market view: pick a market (from `symbols`) and a timeframe; a candlestick chart with
// volume from `candleSeries`, older pages loaded through its cursors as you scroll back,
// live updates from the `candles` subscription, and indicators on it.

import { ApiError } from './api.js';
import { el, select } from './dom.js';
import { clearErrors, field, formErrorBox, showErrors } from './forms.js';
import { Indicators, ON_PRICE } from './indicators.js';
import { LiveCandles } from './live.js';
import { PriceChart } from './price-chart.js';

export const TIMEFRAMES = ['1s', '1m', '5m', '15m', '1h', '4h', '1d'];
const BAR_COUNTS = [500, 1000, 5000, 10000];
const DEFAULT_STORED = /^(sma|bbands|rsi|macd)_/;
const SERIES = `query Series($exchange: String!, $symbol: String!, $timeframe: String!,
    $limit: Int, $before: String) {
  candleSeries(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, limit: $limit,
      before: $before) {
    ts open high low close volume
    pageInfo { startCursor hasPreviousPage }
  }
}`;
/** Paint records kept for the console and the benchmark (`trace`). */
const TRACE_SIZE = 5_000;

export class MarketView {
  constructor(app, root) {
    this.app = app;
    this.api = app.api;
    this.key = null; // the market and timeframe shown: 'exchange symbol timeframe bars'
    this.trace = [];
    this.#build(root);
    this.chart = new PriceChart(this.chartBox);
    this.chart.onOlder = () => this.loadOlder();
    this.indicators = new Indicators(this.api, this.chart);
  }

  #build(root) {
    this.marketSelect = select([], { name: 'market', onchange: () => this.#navigate() });
    this.timeframeSelect = select(TIMEFRAMES, { name: 'timeframe', onchange: () => this.#navigate() });
    this.barsSelect = select(BAR_COUNTS, { name: 'bars', onchange: () => this.#navigate() });
    this.status = el('span', { className: 'status', id: 'live-status' });
    this.form = el('form', { className: 'toolbar', novalidate: true, onsubmit: (e) => e.preventDefault() },
      field('Market ', this.marketSelect, { arg: 'exchange symbol' }),
      field('Timeframe ', this.timeframeSelect, { arg: 'timeframe' }),
      field('Candles ', this.barsSelect, { arg: 'limit' }),
      this.status, formErrorBox());
    this.chartBox = el('div', { className: 'chart price', id: 'market-chart' });
    this.storedList = el('div', { id: 'stored-indicators' });
    this.computedForm = this.#computedForm();
    this.computedList = el('ul', { id: 'computed-indicators' });
    root.append(this.form, el('div', { className: 'with-side' }, this.chartBox,
      el('aside', {},
        el('h3', {}, 'Stored indicators'), this.storedList,
        el('h3', {}, 'Any pandas-ta indicator'), this.computedForm, this.computedList)));
  }

  #computedForm() {
    const name = el('input', { name: 'name', value: 'ema', required: true, size: 8 });
    const params = el('input', { name: 'params', value: '{"length": 50}', size: 16 });
    const onPrice = el('input', { type: 'checkbox', name: 'onPrice', checked: true });
    name.addEventListener('input', () => { onPrice.checked = ON_PRICE.has(name.value.trim()); });
    const form = el('form', { id: 'computed-form', novalidate: true },
      field('Name ', name, { arg: 'name', hint: 'sma, rsi, macd, bbands, adx, …' }),
      field('Params ', params, { arg: 'params', hint: 'JSON; pandas-ta defaults for the rest' }),
      field('On the price ', onPrice, { hint: 'or in a pane of its own below' }),
      el('button', {}, 'Add'), formErrorBox());
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      let parsed;
      try {
        parsed = params.value.trim() ? JSON.parse(params.value) : null;
      } catch (error) {
        showErrors(form, new ApiError([{ message: `not JSON: ${error.message}`,
          extensions: { argument: 'params' } }]));
        return;
      }
      try {
        await this.indicators.addComputed(name.value.trim(), parsed, onPrice.checked);
        this.#listComputed();
      } catch (error) {
        showErrors(form, error);
      }
    });
    return form;
  }

  /** Show the market of the route's params (the first market and 1m by default). */
  async show(params) {
    clearErrors(this.form);
    const route = `${params.get('exchange')} ${params.get('symbol')} `
      + `${params.get('timeframe') ?? '1m'} ${params.get('bars') ?? '1000'}`;
    // A market named in the address: its candles are asked for while the market list loads.
    const early = params.has('symbol') && route !== this.key ? this.#series(route) : null;
    early?.catch(() => {}); // if it is not used, its failure does not matter
    let markets;
    try {
      markets = await this.app.symbols();
    } catch (error) {
      showErrors(this.form, error);
      return;
    }
    if (!markets.length) {
      this.#setStatus('empty', 'No market has stored candles yet.');
      return;
    }
    this.marketSelect.replaceChildren(...markets.map(({ exchange, symbol }) =>
      el('option', { value: `${exchange} ${symbol}` }, `${exchange} · ${symbol}`)));
    const chosen = markets.find((m) => m.exchange === params.get('exchange')
      && m.symbol === params.get('symbol')) ?? markets[0];
    this.marketSelect.value = `${chosen.exchange} ${chosen.symbol}`;
    this.timeframeSelect.value = params.get('timeframe') ?? '1m';
    this.barsSelect.value = params.get('bars') ?? '1000';
    const key = `${this.marketSelect.value} ${this.timeframeSelect.value} ${this.barsSelect.value}`;
    if (key !== this.key) await this.open(key === route ? early : null);
  }

  /** The newest candles of the series `key` ('exchange symbol timeframe bars'). */
  async #series(key) {
    const [exchange, symbol, timeframe, bars] = key.split(' ');
    const data = await this.api.request(SERIES, { exchange, symbol, timeframe, limit: Number(bars) });
    return data.candleSeries;
  }

  #navigate() {
    const [exchange, symbol] = this.marketSelect.value.split(' ');
    const query = new URLSearchParams({ exchange, symbol, timeframe: this.timeframeSelect.value,
      bars: this.barsSelect.value });
    location.hash = `#/market?${query}`;
  }

  get market() {
    const [exchange, symbol] = this.marketSelect.value.split(' ');
    return { exchange, symbol, timeframe: this.timeframeSelect.value };
  }

  /** Load the newest candles of the chosen market (unless already `asked` for), paint them,
   * then go live. */
  async open(asked = null) {
    this.live?.stop();
    this.live = null;
    this.key = `${this.marketSelect.value} ${this.timeframeSelect.value} ${this.barsSelect.value}`;
    const market = this.market;
    this.indicators.reset(market);
    this.page = null;
    this.#setStatus('loading', 'loading…');
    let page;
    try {
      page = await (asked ?? this.#series(this.key));
    } catch (error) {
      this.key = null;
      this.#setStatus('error', '');
      showErrors(this.form, error);
      return;
    }
    this.page = page.pageInfo;
    this.chart.setCandles(page);
    this.chart.setMarkers([]);
    await this.chart.painted();
    performance.mark('candlegraph:candles-painted', { detail: { count: page.ts.length } });
    this.#listStored();
    this.#goLive(market, page.ts.length ? new Date(page.ts.at(-1)).toISOString() : null);
  }

  #goLive(market, since) {
    this.live = new LiveCandles(this.api, {
      ...market,
      since,
      onCandle: (candle) => this.#onCandle(candle),
      onState: (state, error) => {
        this.#setStatus(state, error ? `${state}: ${error.message}` : state);
        // Away so long that more candles closed than one replay holds: load the chart anew.
        if (error?.errors.some((e) => e.extensions?.argument === 'since')) this.open();
      },
    }).start();
  }

  #onCandle(candle) {
    this.chart.upsertCandle(candle);
    if (candle.closed) this.indicators.refreshSoon();
    const record = { ts: candle.ts, trades: candle.trades, closed: candle.closed,
      receivedAt: performance.timeOrigin + performance.now(), paintedAt: null };
    if (this.trace.push(record) > TRACE_SIZE) this.trace.shift();
    requestAnimationFrame(() => { record.paintedAt = performance.timeOrigin + performance.now(); });
  }

  /** The page before the oldest candle shown (the chart asks when the view reaches it);
   * true when it added candles. */
  async loadOlder() {
    if (!this.page?.hasPreviousPage) return false;
    const key = this.key;
    try {
      const older = (await this.api.request(SERIES, {
        ...this.market, limit: Number(this.barsSelect.value), before: this.page.startCursor,
      })).candleSeries;
      if (key !== this.key || !older.ts.length) return false;
      const end = this.chart.candles.data()[0].time;
      this.page = older.pageInfo;
      this.chart.prependCandles(older);
      await this.indicators.loadOlder(older.ts[0] / 1000, end, older.ts.length);
      return true;
    } catch (error) {
      showErrors(this.form, error);
      return false;
    }
  }

  async #listStored() {
    let groups;
    try {
      groups = await this.indicators.available();
    } catch (error) {
      showErrors(this.form, error);
      return;
    }
    this.storedList.replaceChildren(...[...groups].map(([group, names]) => {
      const box = el('input', { type: 'checkbox', name: group });
      box.addEventListener('change', async () => {
        if (box.checked) await this.#addStored(group, names);
        else this.indicators.remove(group);
      });
      return el('label', { className: 'check' }, box, ` ${group}`);
    }));
    if (!groups.size) this.storedList.append(el('p', { className: 'hint' }, 'none stored'));
    // By default the first of each kind: a moving average and Bollinger on the price, RSI and
    // MACD below.
    const kinds = new Set();
    const defaults = [...this.storedList.querySelectorAll('input')].filter((box) => {
      const kind = box.name.split('_')[0];
      if (!DEFAULT_STORED.test(box.name) || kinds.has(kind)) return false;
      kinds.add(kind);
      return true;
    });
    for (const box of defaults) box.checked = true;
    await Promise.all(defaults.map((box) => this.#addStored(box.name, groups.get(box.name))));
    this.storedList.dataset.ready = 'true';
  }

  async #addStored(group, names) {
    try {
      await this.indicators.addStored(group, names);
    } catch (error) {
      showErrors(this.form, error);
    }
  }

  #listComputed() {
    this.computedList.replaceChildren(...[...this.indicators.plotted.values()]
      .filter((plotted) => plotted.variables.name !== undefined)
      .map((plotted) => el('li', {}, plotted.label, ' ', el('button', {
        type: 'button', title: 'remove', onclick: () => {
          this.indicators.remove(plotted.key);
          this.#listComputed();
        },
      }, '×'))));
  }

  #setStatus(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = text;
  }

  hide() {
    // The chart keeps its candles; only the live subscription stops while another view shows.
    this.live?.stop();
    this.live = null;
    this.key = null;
  }
}
