// Backtests: the strategy form, run (`runBacktest`), progress (`backtestProgress`), cancel
// (`cancelBacktest`) and, once it succeeded, its results. `#/backtest?id=...` opens a run.

import { BacktestResults } from './backtest-results.js';
import { el } from './dom.js';
import { clearErrors, showErrors } from './forms.js';
import { STRATEGIES, StrategyForm } from './strategy-form.js';

const RUN = `mutation Run($input: BacktestInput!) { runBacktest(input: $input) { id status } }`;
const CANCEL = `mutation Cancel($id: ID!) { cancelBacktest(id: $id) { id status } }`;
export const PROGRESS = `subscription Progress($id: ID!) {
  backtestProgress(id: $id) { id kind status progress error }
}`;
export const ENDED = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** A progress bar following `backtestProgress(id)` until the run ends (`onEnd(state)` then),
 * with a button that cancels the run. */
export class ProgressPanel {
  constructor(api) {
    this.api = api;
    this.bar = el('progress', { max: 1, value: 0 });
    this.label = el('span', { className: 'status' });
    this.cancelButton = el('button', { type: 'button', name: 'cancel', hidden: true,
      onclick: () => this.#cancel() }, 'Cancel');
    this.element = el('div', { className: 'progress', hidden: true },
      this.bar, ' ', this.label, ' ', this.cancelButton);
  }

  follow(id, onEnd) {
    this.stop();
    this.id = id;
    this.element.hidden = false;
    this.cancelButton.hidden = false;
    this.end = this.api.subscribe(PROGRESS, { id }, {
      next: ({ backtestProgress: state }) => {
        this.#show(state);
        if (ENDED.includes(state.status)) {
          this.cancelButton.hidden = true;
          onEnd(state);
        }
      },
      error: (error) => {
        this.label.textContent = `progress lost: ${error.message}`;
        this.label.dataset.status = 'UNKNOWN';
      },
    });
  }

  #show({ status, progress, error }) {
    this.bar.value = progress;
    this.label.dataset.status = status;
    this.label.textContent = `${status} ${Math.round(progress * 100)} %${error ? ` · ${error}` : ''}`;
  }

  async #cancel() {
    try {
      await this.api.request(CANCEL, { id: this.id });
    } catch (error) {
      this.label.textContent = `could not cancel: ${error.message}`;
    }
  }

  stop() {
    this.end?.();
    this.end = null;
  }
}

export class BacktestView {
  constructor(app, root) {
    this.app = app;
    this.api = app.api;
    this.formBox = el('div', { className: 'form-box' });
    this.progress = new ProgressPanel(this.api);
    this.resultsBox = el('div', { id: 'results' });
    this.results = new BacktestResults(this.api, this.resultsBox);
    root.append(el('div', { className: 'columns' }, this.formBox,
      el('div', { className: 'run' }, this.progress.element, this.resultsBox)));
  }

  async show(params) {
    if (!this.form) {
      try {
        const [{ strategies }, markets] = await Promise.all([
          this.api.request(STRATEGIES), this.app.symbols()]);
        this.form = new StrategyForm({ strategies, markets, submit: 'Run backtest' });
      } catch (error) {
        this.formBox.replaceChildren(el('p', { className: 'error' }, error.message));
        return;
      }
      this.form.element.addEventListener('submit', (event) => {
        event.preventDefault();
        this.#run();
      });
      this.formBox.replaceChildren(el('h2', {}, 'Backtest'), this.form.element);
    }
    const id = params.get('id');
    if (id && id !== this.shown) this.#open(id);
  }

  async #run() {
    clearErrors(this.form.element);
    try {
      const { runBacktest } = await this.api.request(RUN, this.form.read());
      location.hash = `#/backtest?id=${encodeURIComponent(runBacktest.id)}`;
    } catch (error) {
      showErrors(this.form.element, error);
    }
  }

  #open(id) {
    this.shown = id;
    this.results.clear();
    this.progress.follow(id, async (state) => {
      if (state.status !== 'SUCCEEDED' || this.shown !== id) return;
      try {
        await this.results.show(id);
      } catch (error) {
        this.resultsBox.replaceChildren(el('p', { className: 'error' }, error.message));
      }
    });
  }

  hide() {
    this.progress.stop();
    this.shown = null;
  }
}
