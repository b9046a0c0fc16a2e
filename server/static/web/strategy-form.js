// The form of a backtest's input, generated from what the API says a strategy takes: the
// `strategies` query lists each parameter's type, bounds, default and description. With
// `grid: true` each parameter takes a list of values (a sweep's grid) instead of one.
//
// The browser's own checks are off (`novalidate`): the API is the judge of every value, and
// its errors are shown beside the field they name (forms.js).

import { el, select } from './dom.js';
import { field, formErrorBox } from './forms.js';
import { fromLocalInput, toLocalInput } from './format.js';
import { TIMEFRAMES } from './market-view.js';

export const STRATEGIES = `{
  strategies { name summary rule parameters { name type default minimum maximum description } }
}`;

export class StrategyForm {
  /** `strategies` and `markets` as the API listed them; `submit` labels the button. */
  constructor({ strategies, markets, grid = false, submit, extra = [] }) {
    this.strategies = strategies;
    this.markets = markets;
    this.grid = grid;
    this.strategySelect = select(strategies.map((s) => s.name), {
      name: 'strategy', onchange: () => this.#showParameters(),
    });
    this.about = el('details', { className: 'hint about' });
    this.parameters = el('fieldset', { className: 'parameters' });
    this.marketSelect = select(markets.map(({ exchange, symbol }) =>
      [`${exchange} ${symbol}`, `${exchange} · ${symbol}`]), {
      name: 'market', onchange: () => this.#defaultRange(),
    });
    this.timeframe = select(TIMEFRAMES, { name: 'timeframe' });
    this.start = el('input', { type: 'datetime-local', name: 'start' });
    this.end = el('input', { type: 'datetime-local', name: 'end' });
    this.balance = el('input', { type: 'number', name: 'startingBalance', value: 10000, step: 'any' });
    this.takerFee = el('input', { type: 'number', name: 'takerFee', value: 0.001, step: 'any' });
    this.makerFee = el('input', { type: 'number', name: 'makerFee', value: 0.001, step: 'any' });
    this.sizingKind = select([['fraction', 'fraction'], ['quantity', 'quantity']],
      { name: 'sizingKind' });
    this.sizing = el('input', { type: 'number', name: 'sizing', value: 1, step: 'any' });
    this.element = el('form', { className: 'strategy-form', novalidate: true },
      field('Strategy ', this.strategySelect, { arg: 'input.strategy' }),
      this.about,
      this.parameters,
      field('Market ', this.marketSelect, { arg: 'input.exchange input.symbol' }),
      field('Timeframe ', this.timeframe, { arg: 'input.timeframe' }),
      field('From (UTC) ', this.start, { arg: 'input.start input' }),
      field('To (UTC) ', this.end, { arg: 'input.end' }),
      field('Starting balance ', this.balance, { arg: 'input.startingBalance input.currency' }),
      field('Taker fee ', this.takerFee, { arg: 'input.takerFee' }),
      field('Maker fee ', this.makerFee, { arg: 'input.makerFee' }),
      field('Sizing ', el('span', { className: 'pair' }, this.sizingKind, this.sizing),
        { arg: 'input.sizing' }),
      ...extra,
      el('button', { name: 'submit' }, submit),
      formErrorBox());
    this.timeframe.value = '1m';
    this.#showParameters();
    this.#defaultRange();
  }

  get strategy() {
    return this.strategies.find((s) => s.name === this.strategySelect.value);
  }

  #showParameters() {
    const strategy = this.strategy;
    this.about.replaceChildren(el('summary', {}, strategy?.summary ?? ''),
      el('p', { className: 'rule' }, strategy?.rule ?? ''));
    this.parameters.replaceChildren(el('legend', {}, this.grid ? 'Grid: values to try' : 'Parameters'),
      ...(strategy?.parameters ?? []).map((p) => this.#parameterField(p)));
  }

  #parameterField(parameter) {
    const { name, type, minimum, maximum, description } = parameter;
    const bounds = [minimum !== null ? `≥ ${minimum}` : '', maximum !== null ? `≤ ${maximum}` : '']
      .filter(Boolean).join(', ');
    const hint = `${description}${bounds ? ` (${bounds})` : ''}`;
    let control;
    if (this.grid) {
      control = el('input', { name, value: String(parameter.default), dataset: { type } });
    } else if (type === 'BOOL') {
      control = el('input', { type: 'checkbox', name, checked: parameter.default === true });
    } else {
      control = el('input', {
        type: 'number', name, value: parameter.default, step: type === 'INT' ? 1 : 'any',
      });
      if (minimum !== null) control.min = minimum;
      if (maximum !== null) control.max = maximum;
    }
    const arg = this.grid ? `grid.${name} input.params.${name}` : `input.params.${name}`;
    return field(`${name} `, control, { arg, hint: this.grid ? `${hint}; comma-separated` : hint });
  }

  #defaultRange() {
    const [exchange, symbol] = this.marketSelect.value.split(' ');
    const market = this.markets.find((m) => m.exchange === exchange && m.symbol === symbol);
    if (!market) return;
    this.start.value = toLocalInput(market.firstTs);
    // lastTs is the newest candle's start: the range ends a day after, which takes it in.
    this.end.value = toLocalInput(Date.parse(market.lastTs) + 86_400_000);
  }

  /** The BacktestInput, and with `grid` the grid, as the form holds them. */
  read() {
    const [exchange, symbol] = this.marketSelect.value.split(' ');
    const number = (input) => (input.value === '' ? null : Number(input.value));
    const params = {};
    const grid = {};
    for (const input of this.parameters.querySelectorAll('input')) {
      if (this.grid) {
        grid[input.name] = input.value.split(',').map((v) => v.trim()).filter(Boolean)
          .map((v) => (input.dataset.type === 'BOOL' ? v === 'true' : Number(v)));
      } else {
        params[input.name] = input.type === 'checkbox' ? input.checked : number(input);
      }
    }
    const input = {
      exchange, symbol, timeframe: this.timeframe.value, strategy: this.strategySelect.value,
      start: fromLocalInput(this.start.value), end: fromLocalInput(this.end.value), params,
      startingBalance: number(this.balance), takerFee: number(this.takerFee),
      makerFee: number(this.makerFee), sizing: { [this.sizingKind.value]: number(this.sizing) },
    };
    return this.grid ? { input, grid } : { input };
  }
}
