// The shell of the pages that start a run from a strategy form and follow it (backtest,
// sweep, walk-forward): the form on the left; on the right a progress bar following
// `backtestProgress` with a cancel button (`cancelBacktest`), then the result once the run
// ended. `#/<route>?id=...` opens a run.

import { el } from './dom.js';
import { clearErrors, showErrors } from './forms.js';
import { STRATEGIES } from './strategy-form.js';

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

/** A page of one kind of run. A subclass gives `buildForm(strategies, markets)` (a
 * `StrategyForm`), `start()` (the mutation: the new run's id) and `showResult(id, state)`
 * (called once the run ended; what it throws is shown in the result box), and may extend
 * `clear()`. */
export class RunView {
  constructor(app, root, { route, title, resultBox }) {
    this.app = app;
    this.api = app.api;
    this.route = route;
    this.title = title;
    this.formBox = el('div', { className: 'form-box' });
    this.progress = new ProgressPanel(this.api);
    this.resultBox = resultBox;
    root.append(el('div', { className: 'columns' }, this.formBox,
      el('div', { className: 'run' }, this.progress.element, resultBox)));
  }

  async show(params) {
    if (!this.form) {
      try {
        const [{ strategies }, markets] = await Promise.all([
          this.api.request(STRATEGIES), this.app.symbols()]);
        this.form = this.buildForm(strategies, markets);
      } catch (error) {
        this.formBox.replaceChildren(el('p', { className: 'error' }, error.message));
        return;
      }
      this.form.element.addEventListener('submit', (event) => {
        event.preventDefault();
        this.#run();
      });
      this.formBox.replaceChildren(el('h2', {}, this.title), this.form.element);
    }
    const id = params.get('id');
    if (id && id !== this.shown) this.#open(id);
  }

  async #run() {
    clearErrors(this.form.element);
    try {
      const id = await this.start();
      location.hash = `#/${this.route}?id=${encodeURIComponent(id)}`;
    } catch (error) {
      showErrors(this.form.element, error);
    }
  }

  #open(id) {
    this.shown = id;
    this.clear();
    this.progress.follow(id, async (state) => {
      if (this.shown !== id) return;
      try {
        await this.showResult(id, state);
      } catch (error) {
        this.resultBox.replaceChildren(el('p', { className: 'error' }, error.message));
      }
    });
  }

  clear() {
    this.resultBox.replaceChildren();
  }

  hide() {
    this.progress.stop();
    this.shown = null;
  }
}
