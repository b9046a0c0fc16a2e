// A candlestick chart with volume, indicator lines on the price or in panes below it, and
// markers: a thin layer over TradingView Lightweight Charts (vendor/, Apache-2.0).
//
// Data comes in as the API gives it: `candleSeries` columns (ts in epoch ms) for history, and
// candle objects (ts ISO) from the `candles` subscription. The chart's time axis is in seconds.

import {
  CandlestickSeries, HistogramSeries, LineSeries, createChart, createSeriesMarkers,
} from './vendor/lightweight-charts.standalone.production.mjs';

export const UP = '#26a69a';
export const DOWN = '#ef5350';
export const THEME = {
  layout: {
    background: { color: '#131722' }, textColor: '#b2b5be', fontSize: 11,
    panes: { separatorColor: '#2a2e39' },
  },
  grid: { vertLines: { color: '#1e222d' }, horzLines: { color: '#1e222d' } },
  rightPriceScale: { borderColor: '#2a2e39' },
  timeScale: { borderColor: '#2a2e39', timeVisible: true, secondsVisible: true },
};
/** Scrolled to within this many bars of the oldest one, the chart asks for older candles. */
const EDGE_BARS = 20;

/** Bars and volume bars from `candleSeries` columns. */
function toBars({ ts, open, high, low, close, volume }) {
  const bars = new Array(ts.length);
  const volumes = new Array(ts.length);
  for (let i = 0; i < ts.length; i += 1) {
    const time = ts[i] / 1000;
    bars[i] = { time, open: open[i], high: high[i], low: low[i], close: close[i] };
    volumes[i] = { time, value: volume[i], color: close[i] >= open[i] ? `${UP}80` : `${DOWN}80` };
  }
  return { bars, volumes };
}

export class PriceChart {
  constructor(container) {
    this.chart = createChart(container, { ...THEME, autoSize: true });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: 'volume', priceFormat: { type: 'volume' },
      lastValueVisible: false, priceLineVisible: false,
    });
    // Volume in the bottom fifth of the price pane, under the candles.
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.markers = createSeriesMarkers(this.candles, []);
    this.plots = new Map(); // key → the chart's series
    this.panes = []; // names of the panes below the price, in order
    this.lastTime = null;
    // Called when the view reaches the oldest candle; resolves true when it added older ones.
    this.onOlder = null;
    this.loadingOlder = false;
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(() => this.#olderIfAtEdge());
  }

  async #olderIfAtEdge() {
    const range = this.chart.timeScale().getVisibleLogicalRange();
    if (this.loadingOlder || !this.onOlder || !range || range.from >= EDGE_BARS) return;
    this.loadingOlder = true;
    let added = false;
    try {
      added = await this.onOlder();
    } finally {
      this.loadingOlder = false;
    }
    // Scrolled on while it loaded: still at the edge, so load the page before that one too.
    if (added) this.#olderIfAtEdge();
  }

  /** Show these candles (`candleSeries` columns) instead of any before. */
  setCandles(columns) {
    const { bars, volumes } = toBars(columns);
    this.candles.setData(bars);
    this.volume.setData(volumes);
    this.lastTime = bars.at(-1)?.time ?? null;
  }

  /** Add older candles before the ones shown; the view stays where it is. */
  prependCandles(columns) {
    const { bars, volumes } = toBars(columns);
    this.candles.setData([...bars, ...this.candles.data()]);
    this.volume.setData([...volumes, ...this.volume.data()]);
    this.lastTime ??= bars.at(-1)?.time ?? null;
  }

  /** A live candle: the newest one changes in place, a newer one is appended, and an older
   * one (replayed after a reconnect) replaces the bar of its time. */
  upsertCandle({ ts, open, high, low, close, volume }) {
    const time = Date.parse(ts) / 1000;
    const bar = { time, open, high, low, close };
    const volumeBar = { time, value: volume, color: close >= open ? `${UP}80` : `${DOWN}80` };
    const older = this.lastTime !== null && time < this.lastTime;
    if (older && !this.candles.data().some((known) => known.time === time)) {
      this.#insert(bar, volumeBar);
      return;
    }
    this.candles.update(bar, older);
    this.volume.update(volumeBar, older);
    if (!older) this.lastTime = time;
  }

  #insert(bar, volumeBar) {
    const byTime = (a, b) => a.time - b.time;
    this.candles.setData([...this.candles.data(), bar].sort(byTime));
    this.volume.setData([...this.volume.data(), volumeBar].sort(byTime));
  }

  /** Draw `points` ({time, value}, time in seconds) as a line or a histogram, on the price
   * (pane null) or in the pane of that name (created below the others on first use). */
  plot(key, points, { pane = null, kind = 'line', color = '#2962ff', title = '' } = {}) {
    let index = 0;
    if (pane !== null) {
      if (!this.panes.includes(pane)) this.panes.push(pane);
      index = this.panes.indexOf(pane) + 1;
    }
    const definition = kind === 'histogram' ? HistogramSeries : LineSeries;
    const series = this.chart.addSeries(definition, {
      color, title, lineWidth: 1, priceLineVisible: false, lastValueVisible: false,
      crosshairMarkerVisible: false,
    }, index);
    series.setData(points);
    this.plots.set(key, series);
    this.chart.panes()[0].setStretchFactor(Math.max(2, this.panes.length * 0.8));
    return series;
  }

  /** Remove every indicator plot, and the panes they were in. */
  clearPlots() {
    for (const series of this.plots.values()) this.chart.removeSeries(series);
    this.plots.clear();
    for (let index = this.chart.panes().length - 1; index > 0; index -= 1) {
      this.chart.removePane(index);
    }
    this.panes = [];
  }

  setMarkers(markers) {
    this.markers.setMarkers(markers);
  }

  /** Resolves once what was set so far is on the screen: the chart draws in the next
   * animation frame (and, when it was just created or resized, in the one after its size is
   * known), so the frame after next has it. */
  painted() {
    return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  }

  remove() {
    this.chart.remove();
  }
}
