// Parameter sweeps: a grid form (values to try per parameter), `runSweep`, a progress bar,
// and the ranking table once every run has ended. A row opens its run.

import { ENDED, ProgressPanel } from './backtest-view.js';
import { el, select } from './dom.js';
import { clearErrors, field, showErrors } from './forms.js';
import { number, percent } from './format.js';
import { STRATEGIES, StrategyForm } from './strategy-form.js';

const RANK_BY = ['sharpe', 'total_return', 'cagr', 'sortino', 'calmar', 'max_drawdown',
  'annual_volatility', 'win_rate', 'profit_factor', 'expectancy', 'final_equity'];
const SWEEP = `mutation Sweep($input: BacktestInput!, $grid: JSON!, $rankBy: String!) {
  runSweep(input: $input, grid: $grid, rankBy: $rankBy) { id status }
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

export class SweepView {
  constructor(app, root) {
    this.app = app;
    this.api = app.api;
    this.formBox = el('div', { className: 'form-box' });
    this.progress = new ProgressPanel(this.api);
    this.rankingBox = el('div', { id: 'ranking' });
    root.append(el('div', { className: 'columns' }, this.formBox,
      el('div', { className: 'run' }, this.progress.element, this.rankingBox)));
  }

  async show(params) {
    if (!this.form) {
      try {
        const [{ strategies }, markets] = await Promise.all([
          this.api.request(STRATEGIES), this.app.symbols()]);
        this.rankBy = select(RANK_BY, { name: 'rankBy' });
        this.form = new StrategyForm({
          strategies, markets, grid: true, submit: 'Run sweep',
          extra: [field('Rank by ', this.rankBy, { arg: 'rankBy' })],
        });
      } catch (error) {
        this.formBox.replaceChildren(el('p', { className: 'error' }, error.message));
        return;
      }
      this.form.element.addEventListener('submit', (event) => {
        event.preventDefault();
        this.#run();
      });
      this.formBox.replaceChildren(el('h2', {}, 'Sweep'), this.form.element);
    }
    const id = params.get('id');
    if (id && id !== this.shown) this.#open(id);
  }

  async #run() {
    clearErrors(this.form.element);
    try {
      const { runSweep } = await this.api.request(SWEEP, {
        ...this.form.read(), rankBy: this.rankBy.value,
      });
      location.hash = `#/sweep?id=${encodeURIComponent(runSweep.id)}`;
    } catch (error) {
      showErrors(this.form.element, error);
    }
  }

  #open(id) {
    this.shown = id;
    this.rankingBox.replaceChildren();
    this.progress.follow(id, (state) => {
      if (ENDED.includes(state.status) && this.shown === id) this.#showRanking(id);
    });
  }

  async #showRanking(id) {
    let backtest;
    try {
      ({ backtest } = await this.api.request(RANKING, { id }));
    } catch (error) {
      this.rankingBox.replaceChildren(el('p', { className: 'error' }, error.message));
      return;
    }
    const ranking = backtest.ranking;
    if (!ranking) {
      this.rankingBox.replaceChildren(el('p', {}, `No ranking: ${backtest.status}`));
      return;
    }
    const names = Object.keys(ranking.runs[0]?.params ?? ranking.skipped[0]?.params ?? {});
    const open = (run) => { location.hash = `#/backtest?id=${encodeURIComponent(run.id)}`; };
    this.rankingBox.replaceChildren(
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

  hide() {
    this.progress.stop();
    this.shown = null;
  }
}
