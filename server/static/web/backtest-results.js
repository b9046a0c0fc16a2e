// One finished backtest: its metrics table, its equity curve with drawdown, its trades as buy
// and sell markers on the price chart, and its trades table a page at a time.

import { el } from './dom.js';
import { EquityChart } from './equity-chart.js';
import { duration, number, percent, utc } from './format.js';
import { DOWN, PriceChart, UP } from './price-chart.js';

export const METRICS = [
  ['totalReturn', 'Total return', percent], ['cagr', 'CAGR', percent],
  ['annualVolatility', 'Volatility (annual)', percent], ['sharpe', 'Sharpe', number],
  ['sortino', 'Sortino', number], ['calmar', 'Calmar', number],
  ['maxDrawdown', 'Max drawdown', percent],
  ['maxDrawdownDurationSeconds', 'Max drawdown duration', duration],
  ['exposure', 'Exposure', percent], ['buyAndHoldReturn', 'Buy and hold', percent],
  ['tradeCount', 'Trades', number], ['winRate', 'Win rate', percent],
  ['profitFactor', 'Profit factor', number], ['expectancy', 'Expectancy', number],
  ['averageWin', 'Average win', number], ['averageLoss', 'Average loss', number],
  ['bestTrade', 'Best trade', number], ['worstTrade', 'Worst trade', number],
  ['totalFees', 'Fees', number], ['startingEquity', 'Starting equity', number],
  ['finalEquity', 'Final equity', number], ['barCount', 'Bars', number],
];
export const METRIC_FIELDS = `metrics { ${METRICS.map(([name]) => name).join(' ')} }`;
const RESULT = `query Result($id: ID!) {
  backtest(id: $id) {
    id kind status strategy exchange symbol timeframe start end params sweepId
    ${METRIC_FIELDS}
    equity { ts equity }
  }
}`;
const TRADES = `query Trades($id: ID!, $offset: Int!, $limit: Int!) {
  backtest(id: $id) {
    trades(offset: $offset, limit: $limit) {
      side entryTime exitTime entryPrice exitPrice quantity pnl fees netReturn
    }
  }
}`;
const SERIES = `query RunCandles($exchange: String!, $symbol: String!, $timeframe: String!,
    $start: DateTime, $end: DateTime, $before: String) {
  candleSeries(exchange: $exchange, symbol: $symbol, timeframe: $timeframe, start: $start,
      end: $end, before: $before, limit: 5000) {
    ts open high low close volume pageInfo { startCursor hasPreviousPage }
  }
}`;
const TRADES_PAGE = 50;
const MARKER_PAGE = 1000;
const UNITS = { s: 1, m: 60, h: 3600, d: 86400 };

/** The metrics as a table with a column per run: `runs` is [{label, metrics}]. */
export function metricsTable(runs) {
  return el('table', { className: 'metrics' },
    el('thead', {}, el('tr', {}, el('th', {}, ''), runs.map((run) => el('th', {}, run.label)))),
    el('tbody', {}, METRICS.map(([name, label, show]) => el('tr', {},
      el('th', {}, label),
      runs.map((run) => {
        const value = run.metrics?.[name] ?? null;
        return el('td', { dataset: { metric: name, value: JSON.stringify(value) } }, show(value));
      })))));
}

/** Where a trade's marker goes: the bar whose close filled it (a bar's fills happen at its
 * close), at the fill price. */
export function markerTime(iso, timeframe) {
  const width = Number.parseInt(timeframe, 10) * UNITS[timeframe.at(-1)];
  return Math.ceil(Date.parse(iso) / 1000 / width) * width - width;
}

export class BacktestResults {
  constructor(api, root) {
    this.api = api;
    this.root = root;
    this.charts = [];
  }

  clear() {
    for (const chart of this.charts) chart.remove();
    this.charts = [];
    this.root.replaceChildren();
    this.run = null;
  }

  /** Show the run `id` (a succeeded backtest). */
  async show(id) {
    const { backtest } = await this.api.request(RESULT, { id });
    this.clear();
    this.run = backtest;
    const title = `${backtest.strategy} ${JSON.stringify(backtest.params)} · ${backtest.exchange} `
      + `${backtest.symbol} ${backtest.timeframe} · ${utc(backtest.start)} → ${utc(backtest.end)}`;
    const equityBox = el('div', { className: 'chart equity', id: 'equity-chart' });
    const priceBox = el('div', { className: 'chart price', id: 'run-chart' });
    this.tradesBox = el('div', { id: 'trades' });
    this.root.append(el('h2', { id: 'run-title', dataset: { id } }, title),
      el('div', { className: 'with-side' },
        el('div', { className: 'charts' },
          el('h3', {}, 'Equity and drawdown'), equityBox,
          backtest.equity ? null : el('p', { className: 'hint' },
            "A sweep's runs keep no equity curve: run these params again to see it."),
          el('h3', {}, 'Trades on the price'), priceBox),
        el('aside', {}, metricsTable([{ label: 'value', metrics: backtest.metrics }]))),
      el('h3', {}, 'Trades'), this.tradesBox);
    if (backtest.equity) {
      this.equity = new EquityChart(equityBox);
      this.equity.show([{ label: 'equity', ...backtest.equity }]);
      this.charts.push(this.equity);
    } else {
      equityBox.remove();
    }
    this.price = new PriceChart(priceBox);
    this.charts.push(this.price);
    await Promise.all([this.#loadPrice(), this.#showTrades(0)]);
  }

  async #loadPrice() {
    const run = this.run;
    const market = { exchange: run.exchange, symbol: run.symbol, timeframe: run.timeframe };
    const range = { start: run.start, end: run.end };
    let page = (await this.api.request(SERIES, { ...market, ...range })).candleSeries;
    this.price.setCandles(page);
    this.price.onOlder = async () => {
      if (!page.pageInfo.hasPreviousPage) return false;
      page = (await this.api.request(SERIES, { ...market, ...range,
        before: page.pageInfo.startCursor })).candleSeries;
      this.price.prependCandles(page);
      return page.ts.length > 0;
    };
    const markers = [];
    for (let offset = 0; offset < run.metrics.tradeCount; offset += MARKER_PAGE) {
      const { backtest } = await this.api.request(TRADES, { id: run.id, offset, limit: MARKER_PAGE });
      for (const trade of backtest.trades) {
        const long = trade.side === 'LONG';
        markers.push(
          { time: markerTime(trade.entryTime, run.timeframe), price: trade.entryPrice,
            position: long ? 'atPriceBottom' : 'atPriceTop', shape: long ? 'arrowUp' : 'arrowDown',
            color: long ? UP : DOWN, text: long ? 'buy' : 'sell', size: 1.5 },
          { time: markerTime(trade.exitTime, run.timeframe), price: trade.exitPrice,
            position: long ? 'atPriceTop' : 'atPriceBottom', shape: long ? 'arrowDown' : 'arrowUp',
            color: long ? DOWN : UP, text: long ? 'sell' : 'buy', size: 1.5 },
        );
      }
    }
    markers.sort((a, b) => a.time - b.time);
    this.price.setMarkers(markers);
    this.root.dataset.markers = String(markers.length);
  }

  async #showTrades(offset) {
    const { backtest } = await this.api.request(TRADES, {
      id: this.run.id, offset, limit: TRADES_PAGE,
    });
    const total = this.run.metrics.tradeCount;
    const last = Math.min(offset + backtest.trades.length, total);
    const pager = el('div', { className: 'pager' },
      el('button', { type: 'button', name: 'previous', disabled: offset === 0,
        onclick: () => this.#showTrades(Math.max(0, offset - TRADES_PAGE)) }, '‹ previous'),
      el('span', { className: 'hint' }, ` ${total ? offset + 1 : 0}–${last} of ${total} `),
      el('button', { type: 'button', name: 'next', disabled: last >= total,
        onclick: () => this.#showTrades(offset + TRADES_PAGE) }, 'next ›'));
    const columns = ['side', 'entryTime', 'entryPrice', 'exitTime', 'exitPrice', 'quantity',
      'pnl', 'fees', 'netReturn'];
    const show = { entryTime: utc, exitTime: utc, netReturn: percent };
    this.tradesBox.replaceChildren(pager, el('table', { className: 'trades', dataset: { offset } },
      el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c)))),
      el('tbody', {}, backtest.trades.map((trade) => el('tr', {},
        columns.map((c) => el('td', { className: typeof trade[c] === 'number' ? 'num' : '' },
          (show[c] ?? (typeof trade[c] === 'number' ? number : String))(trade[c]))))))));
  }
}
