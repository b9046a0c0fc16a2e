// Backtests: the strategy form, run (`runBacktest`), progress and cancel (`run-view.js`) and,
// once it succeeded, its results. `#/backtest?id=...` opens a run.

import { BacktestResults } from './backtest-results.js';
import { el } from './dom.js';
import { RunView } from './run-view.js';
import { StrategyForm } from './strategy-form.js';

const RUN = `mutation Run($input: BacktestInput!) { runBacktest(input: $input) { id status } }`;

export class BacktestView extends RunView {
  constructor(app, root) {
    super(app, root, { route: 'backtest', title: 'Backtest', resultBox: el('div', { id: 'results' }) });
    this.results = new BacktestResults(this.api, this.resultBox);
  }

  buildForm(strategies, markets) {
    return new StrategyForm({ strategies, markets, submit: 'Run backtest' });
  }

  async start() {
    const { runBacktest } = await this.api.request(RUN, this.form.read());
    return runBacktest.id;
  }

  async showResult(id, state) {
    if (state.status === 'SUCCEEDED') await this.results.show(id);
  }

  clear() {
    this.results.clear();
  }
}
