// The CandleGraph web client: plain ES modules, no build step, only the public GraphQL API.
//
// Views are picked by the URL's hash (`#/market?exchange=sim&symbol=BTC-USDT&timeframe=1m`,
// `#/backtest?id=…`, `#/runs?compare=a,b`, `#/sweep?id=…`, `#/walkforward?id=…`), so every
// view can be linked to.
// `window.candlegraph` holds the views, for the browser console and for tests that read what
// the page holds (`candlegraph.market.chart.candles.data()`).

import { Api } from './api.js';
import { BacktestView } from './backtest-view.js';
import { MarketView } from './market-view.js';
import { RunsView } from './runs-view.js';
import { SweepView } from './sweep-view.js';
import { WalkForwardView } from './walkforward-view.js';

const SYMBOLS = '{ symbols { exchange symbol firstTs lastTs lastPrice } }';

class App {
  constructor() {
    this.api = new Api('/graphql');
    this.views = {
      market: new MarketView(this, document.getElementById('market')),
      backtest: new BacktestView(this, document.getElementById('backtest')),
      runs: new RunsView(this, document.getElementById('runs')),
      sweep: new SweepView(this, document.getElementById('sweep')),
      walkforward: new WalkForwardView(this, document.getElementById('walkforward')),
    };
    this.#keyForm();
    window.addEventListener('hashchange', () => this.route());
  }

  get market() { return this.views.market; }

  get backtest() { return this.views.backtest; }

  get runs() { return this.views.runs; }

  get sweep() { return this.views.sweep; }

  get walkforward() { return this.views.walkforward; }

  /** The markets with stored candles, asked for once (and again after an error). */
  symbols() {
    this.markets ??= this.api.request(SYMBOLS).then(({ symbols }) => symbols);
    this.markets.catch(() => { this.markets = null; });
    return this.markets;
  }

  async route() {
    const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
    const name = path in this.views ? path : 'market';
    for (const [other, view] of Object.entries(this.views)) {
      const section = document.getElementById(other);
      if (other !== name && !section.hidden) view.hide();
      section.hidden = other !== name;
    }
    for (const link of document.querySelectorAll('nav a[data-view]')) {
      link.classList.toggle('active', link.dataset.view === name);
    }
    await this.views[name].show(new URLSearchParams(query));
    document.body.dataset.view = name;
  }

  /** Asked for when the API says UNAUTHENTICATED; the key stays in this browser only. */
  #keyForm() {
    const form = document.getElementById('key-form');
    const reason = document.getElementById('key-reason');
    this.api.addEventListener('unauthenticated', (event) => {
      form.hidden = false;
      reason.textContent = event.detail;
    });
    form.key.value = this.api.key;
    form.forget.addEventListener('click', () => {
      form.key.value = '';
      this.api.setKey('');
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      this.api.setKey(form.key.value.trim());
      form.hidden = true;
      this.markets = null;
      for (const view of Object.values(this.views)) view.hide();
      await this.route();
    });
  }
}

window.candlegraph = new App();
window.candlegraph.route();
