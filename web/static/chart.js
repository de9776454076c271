// Time-series charts on uPlot.
import uPlot from './vendor/uplot/uPlot.esm.js';
import { color, themeColor, fmtBytes, fmtNum } from './app.js';

export const fmt = {
  bytes: (v) => fmtBytes(v) + '/s',
  rate: (v) => fmtNum(v, 1) + '/s',
  count: (v) => fmtNum(v),
  percent: (v) => fmtNum(v, 1) + ' %',
};

// makeChart draws series (names) in el; format turns a value into a label;
// span (seconds), when given, keeps the x axis to the latest window.
// It follows el's width and the theme. Returns { plot, setData, destroy }.
export function makeChart(el, title, names, format, span) {
  const axis = () => ({ stroke: themeColor('muted'), grid: { stroke: themeColor('line'), width: 1 }, ticks: { stroke: themeColor('line') } });
  const width = () => Math.max(260, el.clientWidth - 4);
  const opts = {
    title,
    width: width(),
    height: 180,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: span ? { time: true, range: (u, min, max) => [max - span, max] } : { time: true } },
    axes: [axis(), Object.assign(axis(), { size: 70, values: (u, vals) => vals.map((v) => format(v)) })],
    series: [{}].concat(names.map((n, i) => ({ label: n, stroke: color(i), width: 1.5, value: (u, v) => v === null || v === undefined ? '–' : format(v) }))),
  };
  let data = [[]].concat(names.map(() => []));
  const plot = new uPlot(opts, data, el);
  const ro = new ResizeObserver(() => plot.setSize({ width: width(), height: 180 }));
  ro.observe(el);
  const retheme = () => {
    plot.axes.forEach((a) => { a.stroke = () => themeColor('muted'); });
    plot.redraw(false, true);
  };
  window.addEventListener('themechange', retheme);
  return {
    plot,
    setData(d) { data = d; plot.setData(d); },
    destroy() { ro.disconnect(); window.removeEventListener('themechange', retheme); plot.destroy(); },
  };
}
