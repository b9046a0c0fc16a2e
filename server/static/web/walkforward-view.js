// Walk-forward analysis: the sweep's form with the folds' shape, `runWalkForward`, a progress
// bar, then the result: the stitched out-of-sample metrics and equity curve, the efficiency,
// and one row per fold (its windows, the params its training chose, in- and out-of-sample
// figures). A fold's row opens its out-of-sample run.

import { METRIC_FIELDS, metricsTable } from './backtest-results.js';
import { el, select } from './dom.js';
import { EquityChart } from './equity-chart.js';
import { field } from './forms.js';
import { number, percent, utc } from './format.js';
import { RunView } from './run-view.js';
import { StrategyForm } from './strategy-form.js';
import { RANK_BY, SearchFields } from './sweep-view.js';

const RUN = `mutation WalkForward($input: BacktestInput!, $grid: JSON, $search: SearchInput,
    $folds: Int!, $trainFraction: Float, $testBars: Int, $anchored: Boolean!,
    $rankBy: String!) {
  runWalkForward(input: $input, grid: $grid, search: $search, folds: $folds,
      trainFraction: $trainFraction, testBars: $testBars, anchored: $anchored,
      rankBy: $rankBy) { id status }
}`;
const RESULT = `query WalkForwardResult($id: ID!) {
  backtest(id: $id) {
    id status error
    walkForward {
      rankBy efficiency ${METRIC_FIELDS}
      folds {
        index trainStart trainEnd testStart testEnd trainBars testBars status error testId
        params inSample { totalReturn sharpe } outOfSample { totalReturn sharpe tradeCount }
      }
    }
    equity { ts equity }
  }
}`;

/** One row per fold: its windows, chosen params, in-sample and out-of-sample figures. A row
 * opens the fold's out-of-sample run. */
function foldsTable(id, folds) {
  const names = Object.keys(folds.find((fold) => fold.params)?.params ?? {});
  const minute = (iso) => utc(iso).slice(0, 16);
  const span = (start, end, bars) => el('td', { title: `${bars} bars` },
    `${minute(start)} – ${minute(end)}`);
  const figure = (metrics, name, show) => el('td', {
    className: 'num', dataset: { value: JSON.stringify(metrics?.[name] ?? null) },
  }, show(metrics?.[name] ?? null));
  const open = (fold) => {
    if (fold.testId) location.hash = `#/backtest?id=${encodeURIComponent(fold.testId)}`;
  };
  const headings = ['#', 'train', 'test', ...names, 'in-sample return', 'in-sample Sharpe',
    'test return', 'test Sharpe', 'test trades', 'status'];
  const row = (fold) => el('tr', {
    className: fold.testId ? 'clickable' : '', title: 'open its out-of-sample run',
    dataset: { index: fold.index, testId: fold.testId ?? '' }, onclick: () => open(fold),
  },
  el('td', {}, fold.index),
  span(fold.trainStart, fold.trainEnd, fold.trainBars),
  span(fold.testStart, fold.testEnd, fold.testBars),
  names.map((name) => el('td', { className: 'num' }, String(fold.params?.[name] ?? ''))),
  figure(fold.inSample, 'totalReturn', percent), figure(fold.inSample, 'sharpe', number),
  figure(fold.outOfSample, 'totalReturn', percent), figure(fold.outOfSample, 'sharpe', number),
  figure(fold.outOfSample, 'tradeCount', number),
  el('td', { title: fold.error ?? '' }, fold.status));
  return el('table', { className: 'folds', dataset: { walkforward: id } },
    el('thead', {}, el('tr', {}, headings.map((label) => el('th', {}, label)))),
    el('tbody', {}, folds.map(row)));
}

export class WalkForwardView extends RunView {
  constructor(app, root) {
    super(app, root, { route: 'walkforward', title: 'Walk-forward',
      resultBox: el('div', { id: 'walkforward-result' }) });
  }

  buildForm(strategies, markets) {
    const input = (name, props) => el('input', { name, type: 'number', ...props });
    this.controls = {
      rankBy: select(RANK_BY, { name: 'rankBy' }),
      folds: input('folds', { min: 1, step: 1, value: 4 }),
      trainFraction: input('trainFraction', { min: 0.05, max: 0.95, step: 0.05, value: 0.5 }),
      testBars: input('testBars', { min: 1, step: 1, placeholder: 'what training leaves' }),
      anchored: el('input', { name: 'anchored', type: 'checkbox' }),
    };
    const c = this.controls;
    this.search = new SearchFields();
    return new StrategyForm({
      strategies, markets, grid: true, submit: 'Run walk-forward',
      extra: [
        field('Folds ', c.folds, { arg: 'folds' }),
        field('Training share ', c.trainFraction, {
          arg: 'trainFraction trainBars', hint: "of one fold's training + test bars" }),
        field('Test bars ', c.testBars, { arg: 'testBars' }),
        field('Anchored ', c.anchored, { hint: 'train on every bar from the start' }),
        field('Rank by ', c.rankBy, { arg: 'rankBy' }),
        ...this.search.fields,
      ],
    });
  }

  async start() {
    const c = this.controls;
    const orNull = (control) => (control.value === '' ? null : Number(control.value));
    const { runWalkForward } = await this.api.request(RUN, {
      ...this.form.read(), search: this.search.read(),
      folds: orNull(c.folds), trainFraction: orNull(c.trainFraction),
      testBars: orNull(c.testBars), anchored: c.anchored.checked, rankBy: c.rankBy.value,
    });
    return runWalkForward.id;
  }

  async showResult(id) {
    const { backtest } = await this.api.request(RESULT, { id });
    const walk = backtest.walkForward;
    if (!walk) {
      this.resultBox.replaceChildren(el('p', {}, `No result: ${backtest.status}`));
      return;
    }
    const chartBox = el('div', { className: 'chart equity', id: 'walkforward-equity' });
    this.clear();
    this.resultBox.append(
      el('h2', {}, 'Out of sample, stitched'),
      el('p', { className: 'error', hidden: !backtest.error }, backtest.error ?? ''),
      el('p', { id: 'efficiency', dataset: { value: JSON.stringify(walk.efficiency) } },
        'Walk-forward efficiency (out-of-sample CAGR over in-sample): ',
        walk.efficiency === null ? 'none (the in-sample CAGR is not above zero)'
          : number(walk.efficiency)),
      chartBox,
      el('h2', {}, `Folds, ranked by ${walk.rankBy}`),
      el('div', { className: 'scroll' }, foldsTable(id, walk.folds)),
      el('h2', {}, 'Stitched metrics'),
      metricsTable([{ label: 'out of sample', metrics: walk.metrics }]));
    if (backtest.equity?.ts.length) {
      this.chart = new EquityChart(chartBox);
      this.chart.show([{ label: 'out of sample', ...backtest.equity }]);
    }
  }

  clear() {
    this.chart?.remove();
    this.chart = null;
    super.clear();
  }
}
