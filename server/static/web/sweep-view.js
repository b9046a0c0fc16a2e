// Parameter sweeps: a grid form (values to try per parameter), `runSweep`, a progress bar,
// and the ranking table once every run has ended. A row opens its run. GRID runs every
// combination; RANDOM and TPE run `trials` of them, chosen from the grid's values (`search`).

import { el, select } from './dom.js';
import { field } from './forms.js';
import { number, percent } from './format.js';
import { RunView } from './run-view.js';
import { StrategyForm } from './strategy-form.js';

export const RANK_BY = ['sharpe', 'total_return', 'cagr', 'sortino', 'calmar', 'max_drawdown',
  'annual_volatility', 'win_rate', 'profit_factor', 'expectancy', 'final_equity'];
const METHODS = [['GRID', 'grid: every combination'], ['RANDOM', 'random'], ['TPE', 'TPE (Optuna)']];
const SWEEP = `mutation Sweep($input: BacktestInput!, $grid: JSON!, $rankBy: String!,
    $search: SearchInput) {
  runSweep(input: $input, grid: $grid, rankBy: $rankBy, search: $search) { id status }
}`;
const RANKING = `query Ranking($id: ID!) {
  backtest(id: $id) {
    id status error
    ranking {
      rankBy
      runs { rank id params metrics { totalReturn sharpe maxDrawdown tradeCount winRate finalEquity } }
      unfinished { id params status error }
      skipped { params reason }
    }
  }
}`;
const COLUMNS = [['totalReturn', 'return', percent], ['sharpe', 'Sharpe', number],
  ['maxDrawdown', 'max DD', percent], ['winRate', 'win rate', percent],
  ['tradeCount', 'trades', number], ['finalEquity', 'final equity', number]];

/** The search fields of a sweep or walk-forward form: the method, and for RANDOM and TPE the
 * trials and seed (hidden for GRID). `read()` gives the API's `search` argument. */
export class SearchFields {
  constructor() {
    this.method = select(METHODS, { name: 'method' });
    this.trials = el('input', { name: 'trials', type: 'number', min: 1, step: 1, value: 20 });
    this.seed = el('input', { name: 'seed', type: 'number', step: 1, placeholder: 'random' });
    const searching = [
      field('Trials ', this.trials, { arg: 'search.trials' }),
      field('Seed ', this.seed, { arg: 'search.seed', hint: 'the same seed, the same trials' }),
    ];
    const show = () => {
      for (const box of searching) box.hidden = this.method.value === 'GRID';
    };
    this.method.addEventListener('change', show);
    show();
    this.fields = [
      field('Search ', this.method, { arg: 'search.method search.space search.batch' }),
      ...searching];
  }

  read() {
    const method = this.method.value;
    const orNull = (input) => (input.value === '' ? null : Number(input.value));
    return method === 'GRID' ? null
      : { method, trials: orNull(this.trials), seed: orNull(this.seed) };
  }
}

export class SweepView extends RunView {
  constructor(app, root) {
    super(app, root, { route: 'sweep', title: 'Sweep', resultBox: el('div', { id: 'ranking' }) });
  }

  buildForm(strategies, markets) {
    this.rankBy = select(RANK_BY, { name: 'rankBy' });
    this.search = new SearchFields();
    return new StrategyForm({
      strategies, markets, grid: true, submit: 'Run sweep',
      extra: [field('Rank by ', this.rankBy, { arg: 'rankBy' }), ...this.search.fields],
    });
  }

  async start() {
    const { runSweep } = await this.api.request(SWEEP, {
      ...this.form.read(), rankBy: this.rankBy.value, search: this.search.read(),
    });
    return runSweep.id;
  }

  async showResult(id) {
    const { backtest } = await this.api.request(RANKING, { id });
    const ranking = backtest.ranking;
    if (!ranking) {
      this.resultBox.replaceChildren(el('p', {}, `No ranking: ${backtest.status}`));
      return;
    }
    const names = Object.keys(ranking.runs[0]?.params ?? ranking.skipped[0]?.params ?? {});
    const open = (run) => { location.hash = `#/backtest?id=${encodeURIComponent(run.id)}`; };
    this.resultBox.replaceChildren(
      el('h2', {}, `Ranking by ${ranking.rankBy}`),
      el('table', { className: 'ranking', dataset: { sweep: id } },
        el('thead', {}, el('tr', {}, el('th', {}, '#'), names.map((n) => el('th', {}, n)),
          COLUMNS.map(([, label]) => el('th', {}, label)))),
        el('tbody', {}, ranking.runs.map((run) => el('tr', {
          className: 'clickable', dataset: { id: run.id, rank: run.rank },
          title: 'open this run', onclick: () => open(run),
        }, el('td', {}, run.rank), names.map((n) => el('td', { className: 'num' }, String(run.params[n]))),
        COLUMNS.map(([name, , show]) => el('td', {
          className: 'num', dataset: { metric: name, value: JSON.stringify(run.metrics[name]) },
        }, show(run.metrics[name]))))))),
      el('p', { className: 'hint', hidden: !ranking.unfinished.length }, 'Did not finish: ',
        ranking.unfinished.map((run) => `${JSON.stringify(run.params)} ${run.status}`).join('; ')),
      el('p', { className: 'hint', hidden: !ranking.skipped.length }, 'Skipped: ',
        ranking.skipped.map((run) => `${JSON.stringify(run.params)} (${run.reason})`).join('; ')));
  }
}
