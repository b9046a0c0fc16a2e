// Past runs (`backtests`, newest first, a page at a time), and two or more of them side by
// side: their metrics in one table and their equity curves on one chart.
// `#/runs?compare=id1,id2` opens a comparison.

import { METRIC_FIELDS, metricsTable } from './backtest-results.js';
import { el } from './dom.js';
import { EquityChart, RUN_COLORS } from './equity-chart.js';
import { percent, number, utc } from './format.js';

const LIST = `query Runs($cursor: String) {
  backtests(limit: 20, cursor: $cursor) {
    items { id kind status strategy exchange symbol timeframe createdAt params
      metrics { totalReturn sharpe tradeCount } }
    nextCursor
  }
}`;
const COMPARED = `query Compared($id: ID!) {
  backtest(id: $id) { id strategy params symbol timeframe ${METRIC_FIELDS} equity { ts equity } }
}`;

export class RunsView {
  constructor(app, root) {
    this.api = app.api;
    this.rows = el('tbody');
    this.more = el('button', { type: 'button', name: 'more', hidden: true,
      onclick: () => this.#page(this.cursor) }, 'More');
    this.compareButton = el('button', { type: 'button', name: 'compare', onclick: () => {
      const ids = [...this.rows.querySelectorAll('input:checked')].map((box) => box.value);
      location.hash = `#/runs?compare=${ids.map(encodeURIComponent).join(',')}`;
    } }, 'Compare selected');
    this.comparison = el('div', { id: 'comparison' });
    root.append(
      el('h2', {}, 'Past runs'),
      el('table', { className: 'runs' }, el('thead', {}, el('tr', {},
        ['', 'created', 'kind', 'strategy', 'params', 'market', 'status', 'return', 'Sharpe',
          'trades'].map((h) => el('th', {}, h)))), this.rows),
      el('p', {}, this.more, ' ', this.compareButton, ' ',
        el('span', { className: 'hint' }, 'Tick two or more backtests to compare them.')),
      this.comparison);
  }

  async show(params) {
    this.rows.replaceChildren();
    await this.#page(null);
    const ids = (params.get('compare') ?? '').split(',').filter(Boolean);
    if (ids.length) await this.compare(ids);
    else this.#clearComparison();
  }

  async #page(cursor) {
    let page;
    try {
      ({ backtests: page } = await this.api.request(LIST, { cursor }));
    } catch (error) {
      this.rows.append(el('tr', {}, el('td', { colSpan: 10, className: 'error' }, error.message)));
      return;
    }
    this.cursor = page.nextCursor;
    this.more.hidden = !page.nextCursor;
    for (const run of page.items) {
      const target = run.kind === 'SWEEP' ? 'sweep' : 'backtest';
      const link = el('a', { href: `#/${target}?id=${encodeURIComponent(run.id)}` }, utc(run.createdAt));
      this.rows.append(el('tr', { dataset: { id: run.id } },
        el('td', {}, run.kind === 'BACKTEST' && run.status === 'SUCCEEDED'
          ? el('input', { type: 'checkbox', value: run.id, title: 'compare' }) : ''),
        el('td', {}, link), el('td', {}, run.kind.toLowerCase()), el('td', {}, run.strategy),
        el('td', {}, JSON.stringify(run.params)),
        el('td', {}, `${run.exchange} · ${run.symbol} ${run.timeframe}`),
        el('td', { dataset: { status: run.status } }, run.status),
        el('td', { className: 'num' }, percent(run.metrics?.totalReturn)),
        el('td', { className: 'num' }, number(run.metrics?.sharpe)),
        el('td', { className: 'num' }, number(run.metrics?.tradeCount))));
    }
  }

  /** The runs `ids` side by side. */
  async compare(ids) {
    let runs;
    try {
      runs = await Promise.all(ids.map(async (id) => (await this.api.request(COMPARED, { id })).backtest));
    } catch (error) {
      this.comparison.replaceChildren(el('p', { className: 'error' }, error.message));
      return;
    }
    this.#clearComparison();
    const label = (run, i) => `${i + 1}. ${run.strategy} ${JSON.stringify(run.params)}`;
    const chartBox = el('div', { className: 'chart equity', id: 'compare-chart' });
    this.comparison.append(el('h2', {}, 'Comparison'),
      el('ul', { className: 'legend' }, runs.map((run, i) => el('li', {
        style: `color: ${RUN_COLORS[i % RUN_COLORS.length]}`,
      }, label(run, i)))),
      chartBox,
      metricsTable(runs.map((run, i) => ({ label: `${i + 1}`, metrics: run.metrics }))));
    this.chart = new EquityChart(chartBox);
    this.chart.show(runs
      .map((run, i) => ({ label: `${i + 1}`, color: RUN_COLORS[i % RUN_COLORS.length], ...run.equity }))
      .filter((curve) => curve.ts));
  }

  #clearComparison() {
    this.chart?.remove();
    this.chart = null;
    this.comparison.replaceChildren();
  }

  hide() {
    this.#clearComparison();
  }
}
