// Overview: live charts from the event stream, history from the store,
// the capture's status and its start/stop control.
import { api, onStream, h, fmtBytes, fmtNum, errorBox } from './app.js';
import { makeChart, fmt } from './chart.js';

const MAX_POINTS = 300;

const RANGES = [['15m', 900], ['1h', 3600], ['6h', 21600], ['24h', 86400], ['7d', 604800]];

const HISTORY = [
  { title: 'Packets/s', q: 'sum(rate(netsentry_engine_packets_total[1m]))', fmt: fmt.rate, legend: () => 'packets/s' },
  { title: 'Bytes/s', q: 'sum(rate(netsentry_engine_bytes_total[1m]))', fmt: fmt.bytes, legend: () => 'bytes/s' },
  { title: 'Drops/s per queue', q: 'sum by (queue) (rate(netsentry_engine_drops_total[1m]))', fmt: fmt.rate, legend: (m) => 'queue ' + (m.queue ?? '?') },
  { title: 'Active flows', q: 'sum(netsentry_flows_active)', fmt: fmt.count, legend: () => 'flows' },
  { title: 'CPU', q: 'avg(netsentry_node_cpu_usage_ratio) * 100', fmt: fmt.percent, legend: () => 'cpu %' },
  { title: 'Memory', q: 'netsentry_node_memory_usage_ratio * 100', fmt: fmt.percent, legend: () => 'memory %' },
];

export function mount(el) {
  const cleanups = [];
  const kpi = (id, label) => h('div', { class: 'kpi' }, h('b', { id: 'kpi-' + id }, '–'), h('span', {}, label));
  const capBox = h('div', { class: 'card', id: 'capture' });
  const queueBox = h('div', { class: 'card' }, h('h2', {}, 'Queues'), h('div', { class: 'tablewrap', id: 'queues' }, h('p', { class: 'muted' }, 'Loading…')));
  const live = h('section', { class: 'grid', 'aria-label': 'Live charts' });
  const rangeSel = h('select', { id: 'range' }, RANGES.map(([n]) => h('option', { value: n }, 'last ' + n)));
  const histGrid = h('div', { class: 'grid' });
  const histErr = h('div');
  el.append(
    h('h1', {}, 'Overview'),
    h('section', { class: 'kpis', 'aria-label': 'Current values' },
      kpi('pps', 'packets/s'), kpi('bps', 'bytes/s'), kpi('drops', 'drops (total)'), kpi('flows', 'active flows'),
      kpi('cpu', 'CPU'), kpi('mem', 'memory'), kpi('disk', 'disk')),
    h('div', { class: 'grid' }, capBox, queueBox),
    h('h2', { style: 'margin-top:16px' }, 'Live (last 5 minutes, from /api/v1/stream)'),
    live,
    h('div', { class: 'row', style: 'margin-top:16px' },
      h('h2', { style: 'margin:0 12px 0 0' }, 'History (from the store)'),
      h('div', {}, h('label', { for: 'range' }, 'Time range'), rangeSel)),
    histErr, histGrid);

  // Live charts.
  const defs = [
    ['pps', 'Packets/s', ['packets/s'], fmt.rate],
    ['bps', 'Bytes/s', ['bytes/s'], fmt.bytes],
    ['drops', 'Drops/s (all queues)', ['drops/s'], fmt.rate],
    ['flows', 'Active flows', ['flows'], fmt.count],
    ['cpu', 'CPU', ['cpu %'], fmt.percent],
    ['mem', 'Memory and disk', ['memory %', 'disk %'], fmt.percent],
  ];
  const charts = {};
  const series = {};
  for (const [id, title, names, f] of defs) {
    const box = h('div', { class: 'card chart', id: 'live-' + id, role: 'img', 'aria-label': title + ', live chart' });
    live.append(box);
    charts[id] = makeChart(box, title, names, f, 300);
    series[id] = [[]].concat(names.map(() => []));
    cleanups.push(() => charts[id].destroy());
  }
  let prev = null;
  const push = (id, t, ...vals) => {
    const s = series[id];
    s[0].push(t);
    vals.forEach((v, i) => s[i + 1].push(v));
    if (s[0].length > MAX_POINTS) s.forEach((a) => a.shift());
    charts[id].setData(s);
    window.nsStats.points[id] = s[0].length;
  };
  cleanups.push(onStream((ev, doc) => {
    if (ev !== 'metrics') return;
    const m = doc.metrics || {};
    const s = m.sensor || {};
    const t = Date.parse(doc.timestamp) / 1000;
    const cpu = m.cpu ? m.cpu.usage_percent : null;
    const mem = m.memory ? m.memory.used_percent : null;
    const disk = m.disk ? m.disk.used_percent : null;
    setText('kpi-flows', fmtNum(s.connections_active));
    setText('kpi-drops', fmtNum(s.drops));
    setText('kpi-cpu', cpu === null ? '–' : fmtNum(cpu, 1) + ' %');
    setText('kpi-mem', mem === null ? '–' : fmtNum(mem, 1) + ' %');
    setText('kpi-disk', disk === null ? '–' : fmtNum(disk, 1) + ' %');
    push('flows', t, s.connections_active ?? null);
    push('cpu', t, cpu);
    push('mem', t, mem, disk);
    if (prev && t > prev.t) {
      const dt = t - prev.t;
      const rate = (a, b) => (a === undefined || b === undefined || a < b) ? null : (a - b) / dt;
      const pps = rate(s.packets_captured, prev.s.packets_captured);
      const bps = rate(s.bytes_captured, prev.s.bytes_captured);
      push('pps', t, pps);
      push('bps', t, bps);
      push('drops', t, rate(s.drops, prev.s.drops));
      setText('kpi-pps', fmtNum(pps, 1));
      setText('kpi-bps', fmtBytes(bps));
    }
    if (window.nsStats.firstPoint === null) window.nsStats.firstPoint = performance.now();
    prev = { t, s };
    if (typeof s.capture_running === 'boolean' && capState && capState.running !== s.capture_running) refreshCapture();
  }));

  // Capture status and control; queues.
  let capState = null;
  async function refreshCapture() {
    try {
      const st = await api('/api/v1/network/stats');
      capState = st.capture;
      renderCapture(st.capture);
      renderQueues(st);
    } catch (e) {
      capBox.replaceChildren(h('h2', {}, 'Capture'), errorBox(e));
    }
  }
  function renderCapture(c) {
    const btn = h('button', { type: 'button', id: 'capture-toggle', class: 'primary' }, c.running ? 'Stop capture' : 'Start capture');
    const msg = h('p', { id: 'capture-msg', role: 'status' });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      msg.textContent = '';
      try {
        const r = await api('/api/v1/capture', { method: 'POST', body: { action: c.running ? 'stop' : 'start' } });
        capState = r;
        renderCapture(r);
        refreshCapture();
      } catch (e) {
        btn.disabled = false;
        msg.replaceChildren(errorBox(e));
      }
    });
    capBox.replaceChildren(...[
      h('h2', {}, 'Capture'),
      h('p', {}, h('span', { id: 'capture-state', class: c.running ? 'ok' : 'warn' }, c.running ? 'running' : 'stopped'),
        c.interfaces && c.interfaces.length ? ' on ' + c.interfaces.join(', ') : '',
        c.since ? h('span', { class: 'muted' }, ' since ' + new Date(c.since).toLocaleString()) : '',
        c.fanout ? h('span', { class: 'muted' }, ' · ' + c.queues + ' queues, fan-out ' + c.fanout) : ''),
      c.reason ? h('p', { class: 'warn' }, c.reason) : null,
      btn, msg].filter(Boolean));
  }
  // Drops/s per queue, live: from the queue counters polled below (the
  // stream carries the total only). The chart is made when the queues are
  // known, and again when their number changes (a restarted capture).
  let qchart = null, qseries = null, qprev = null, qbox = null;
  function pushQueueDrops(st) {
    const qs = st.queues || [];
    if (!qs.length) return;
    const t = Date.now() / 1000;
    if (!qchart || qseries.length !== qs.length + 1) {
      if (qchart) qchart.destroy();
      if (!qbox) {
        qbox = h('div', { class: 'card chart', id: 'live-queue-drops', role: 'img', 'aria-label': 'Drops/s per queue, live chart' });
        live.append(qbox);
      }
      qbox.replaceChildren();
      qchart = makeChart(qbox, 'Drops/s per queue', qs.map((q) => 'queue ' + q.queue), fmt.rate, 300);
      qseries = [[]].concat(qs.map(() => []));
      qprev = null;
    }
    if (qprev && t > qprev.t) {
      qseries[0].push(t);
      qs.forEach((q, i) => {
        const b = qprev.drops[i];
        qseries[i + 1].push(b === undefined || q.drops < b ? null : (q.drops - b) / (t - qprev.t));
      });
      if (qseries[0].length > MAX_POINTS) qseries.forEach((a) => a.shift());
      qchart.setData(qseries);
      window.nsStats.points['queue-drops'] = qseries[0].length;
    }
    qprev = { t, drops: qs.map((q) => q.drops) };
  }
  cleanups.push(() => { if (qchart) qchart.destroy(); });
  function renderQueues(st) {
    pushQueueDrops(st);
    const rows = (st.queues || []).map((q) => h('tr', {},
      h('td', {}, q.queue), h('td', {}, q.cpu ?? '–'), h('td', { class: 'num' }, fmtNum(q.packets)), h('td', { class: 'num' }, fmtBytes(q.bytes)),
      h('td', { class: 'num ' + (q.drops ? 'error' : '') }, fmtNum(q.drops)), h('td', { class: 'num' }, fmtNum(q.freezes))));
    document.getElementById('queues').replaceChildren(rows.length ? h('table', {},
      h('caption', { class: 'muted' }, 'Per capture queue (ring), since the capture started'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'queue'), h('th', { scope: 'col' }, 'CPU'), h('th', { scope: 'col', class: 'num' }, 'packets'),
        h('th', { scope: 'col', class: 'num' }, 'bytes'), h('th', { scope: 'col', class: 'num' }, 'drops'), h('th', { scope: 'col', class: 'num' }, 'freezes'))),
      h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No capture queues (capture stopped).'));
  }
  refreshCapture();
  const qt = setInterval(refreshCapture, 2000);
  cleanups.push(() => clearInterval(qt));

  // History.
  const hcharts = [];
  cleanups.push(() => hcharts.forEach((c) => c.destroy()));
  async function loadHistory() {
    const secs = RANGES.find(([n]) => n === rangeSel.value)[1];
    const end = Math.floor(Date.now() / 1000);
    const start = end - secs;
    const step = Math.max(5, Math.ceil(secs / 240));
    histErr.replaceChildren();
    hcharts.forEach((c) => c.destroy());
    hcharts.length = 0;
    histGrid.replaceChildren();
    for (const d of HISTORY) {
      const box = h('div', { class: 'card chart', role: 'img', 'aria-label': d.title + ', history chart' });
      histGrid.append(box);
      try {
        const r = await api('/api/v1/query_range?' + new URLSearchParams({ query: d.q, start, end, step }));
        const res = (r.data && r.data.result) || [];
        const ts = [];
        for (let t = start - (start % step) + step; t <= end; t += step) ts.push(t);
        const idx = new Map(ts.map((t, i) => [t, i]));
        const cols = res.map((s) => {
          const col = new Array(ts.length).fill(null);
          for (const [t, v] of s.values) { const i = idx.get(Math.round(t)); if (i !== undefined) col[i] = Number(v); }
          return col;
        });
        const names = res.length ? res.map((s) => d.legend(s.metric || {})) : [d.legend({})];
        const c = makeChart(box, d.title + (res.length ? '' : ' (no data in this range)'), names, d.fmt);
        c.setData([ts].concat(res.length ? cols : [new Array(ts.length).fill(null)]));
        hcharts.push(c);
      } catch (e) {
        box.replaceChildren(h('h2', {}, d.title), errorBox(e));
      }
    }
  }
  rangeSel.addEventListener('change', loadHistory);
  loadHistory();

  return () => cleanups.forEach((f) => f());
}

function setText(id, v) {
  const e = document.getElementById(id);
  if (e) e.textContent = v;
}
