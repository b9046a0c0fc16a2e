// Equity curves with their drawdown below: one run's, or several runs' on one chart to compare.
// The API gives a curve as columns (`equity { ts equity }`, ts in epoch ms); the drawdown at
// each bar is the equity over its running peak, minus one.

import {
  AreaSeries, LineSeries, createChart,
} from './vendor/lightweight-charts.standalone.production.mjs';
import { THEME } from './price-chart.js';

export const RUN_COLORS = ['#2962ff', '#f7a21b', '#e040fb', '#26a69a', '#ef5350', '#00bcd4'];

/** Drawdown points of an equity curve: fractions <= 0. */
export function drawdown(ts, equity) {
  let peak = -Infinity;
  return ts.map((ms, i) => {
    peak = Math.max(peak, equity[i]);
    return { time: ms / 1000, value: equity[i] / peak - 1 };
  });
}

export class EquityChart {
  constructor(container) {
    // Bars may be thinner than a pixel: a run of any length fits the width.
    this.chart = createChart(container, {
      ...THEME, autoSize: true, timeScale: { ...THEME.timeScale, minBarSpacing: 0.01 },
    });
    this.series = [];
    // The whole run in view at any width (the chart learns its size after it is shown).
    this.fit = new ResizeObserver(() => requestAnimationFrame(() => {
      this.chart.timeScale().fitContent();
    }));
    this.fit.observe(container);
  }

  /** Show `curves`: [{label, ts, equity, color}], each in its own colour. */
  show(curves) {
    for (const series of this.series) this.chart.removeSeries(series);
    this.series = [];
    curves.forEach(({ label, ts, equity, color }, i) => {
      color ??= RUN_COLORS[i % RUN_COLORS.length];
      const line = this.chart.addSeries(LineSeries, {
        color, lineWidth: 2, title: label, priceLineVisible: false,
      }, 0);
      line.setData(ts.map((ms, j) => ({ time: ms / 1000, value: equity[j] })));
      const under = this.chart.addSeries(AreaSeries, {
        lineColor: color, topColor: `${color}10`, bottomColor: `${color}60`, lineWidth: 1,
        invertFilledArea: true, priceLineVisible: false, title: curves.length > 1 ? '' : 'drawdown',
        priceFormat: { type: 'percent' },
      }, 1);
      under.setData(drawdown(ts, equity).map((p) => ({ ...p, value: p.value * 100 })));
      this.series.push(line, under);
    });
    if (this.chart.panes()[1]) this.chart.panes()[1].setStretchFactor(0.5);
    this.chart.timeScale().fitContent();
  }

  remove() {
    this.fit.disconnect();
    this.chart.remove();
  }
}
