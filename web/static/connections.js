// Connections: the active flows (live snapshot) and the stored flow
// history, with the same filters.
import { api, h, fmtBytes, fmtNum, errorBox } from './app.js';
import { makeTable } from './table.js';

function appText(r) {
  const a = r.app || {};
  const parts = [];
  for (const [k, v] of Object.entries(a)) {
    if (k === 'guess') continue;
    parts.push(k + ': ' + (Array.isArray(v) ? v.join(', ') : (typeof v === 'object' ? JSON.stringify(v) : v)));
  }
  return parts.join(' · ');
}

export function appCell(r) {
  const guess = r.app && r.app.guess;
  return h('span', {}, h('span', { class: 'pill' + (guess ? ' guess' : ''), title: guess ? 'guessed from the server port alone' : 'detected from payload' },
    (r.application_protocol || '–') + (guess ? ' (guessed)' : '')));
}

const COLS = [
  { key: 'source', label: 'Source', value: (r) => r.source_ip + ':' + r.source_port, render: (r) => r.source_ip + ':' + r.source_port },
  { key: 'dest', label: 'Destination', value: (r) => r.dest_ip + ':' + r.dest_port, render: (r) => r.dest_ip + ':' + r.dest_port },
  { key: 'protocol', label: 'Proto' },
  { key: 'application_protocol', label: 'App', render: appCell },
  { key: 'bytes', label: 'Bytes', num: true, value: (r) => r.bytes_tx + r.bytes_rx, render: (r) => fmtBytes(r.bytes_tx + r.bytes_rx) },
  { key: 'bytes_tx', label: 'Bytes →', num: true, render: (r) => fmtNum(r.bytes_tx) },
  { key: 'bytes_rx', label: 'Bytes ←', num: true, render: (r) => fmtNum(r.bytes_rx) },
  { key: 'packets_tx', label: 'Pkts →', num: true, render: (r) => fmtNum(r.packets_tx) },
  { key: 'packets_rx', label: 'Pkts ←', num: true, render: (r) => fmtNum(r.packets_rx) },
  { key: 'duration_sec', label: 'Duration s', num: true, render: (r) => fmtNum(r.duration_sec, 3) },
  { key: 'state', label: 'State', render: (r) => r.state + ' (' + r.conn_state + ')' },
  { key: 'meta', label: 'Metadata', value: appText, render: (r) => h('span', { class: 'muted' }, appText(r)) },
];

const HIST_COLS = COLS.concat([
  { key: 'last_seen', label: 'Last seen', render: (r) => r.last_seen ? new Date(r.last_seen).toLocaleString() : '–' },
  { key: 'end_reason', label: 'Ended' },
]);

function field(id, label, attrs) {
  return h('div', {}, h('label', { for: id }, label), h('input', Object.assign({ id }, attrs)));
}

export function mount(el) {
  const form = h('form', { class: 'row', id: 'conn-filter', role: 'search', 'aria-label': 'Filter connections' },
    field('f-ip', 'IP address (either end)', { name: 'ip', size: 18, placeholder: '10.0.0.1' }),
    field('f-port', 'Port (either end)', { name: 'port', type: 'number', min: 0, max: 65535, style: 'width:7em' }),
    h('div', {}, h('label', { for: 'f-proto' }, 'Protocol'),
      h('select', { id: 'f-proto', name: 'protocol' }, ['', 'TCP', 'UDP', 'ICMP', 'ICMPv6'].map((p) => h('option', { value: p }, p || 'any')))),
    field('f-app', 'Application protocol', { name: 'app', size: 10, placeholder: 'HTTP, DNS…' }),
    h('div', {}, h('label', { for: 'f-start' }, 'History since'), h('input', { id: 'f-start', name: 'start', type: 'datetime-local' })),
    h('div', {}, h('span', { class: 'muted' }, ' '), h('button', { type: 'submit', class: 'primary' }, 'Apply')));
  const liveT = makeTable('connections-table', 'Active connections (live snapshot, up to 1000 by bytes)', COLS, { sort: 'bytes' });
  const histT = makeTable('flows-table', 'Stored flow history (ended flows)', HIST_COLS, { sort: 'last_seen' });
  const liveErr = h('div'), histErr = h('div');
  const more = h('button', { type: 'button', id: 'flows-more', hidden: true }, 'Load older flows');
  el.append(h('h1', {}, 'Connections'), form,
    h('section', { class: 'card', 'aria-labelledby': 'h-live' }, h('h2', { id: 'h-live' }, 'Active'), liveErr, liveT.el),
    h('section', { class: 'card', style: 'margin-top:12px', 'aria-labelledby': 'h-hist' }, h('h2', { id: 'h-hist' }, 'History'), histErr, histT.el, more));

  const f = () => Object.fromEntries(new FormData(form));
  async function loadLive() {
    const v = f();
    const q = new URLSearchParams({ limit: 1000, sort: 'bytes' });
    if (v.protocol) q.set('protocol', v.protocol);
    if (v.app) q.set('application_protocol', v.app);
    if (v.ip) q.set('host', v.ip);
    try {
      const r = await api('/api/v1/network/connections?' + q);
      let rows = r.connections || [];
      if (v.port) rows = rows.filter((c) => c.source_port == v.port || c.dest_port == v.port);
      liveErr.replaceChildren();
      liveT.setRows(rows);
    } catch (e) { liveErr.replaceChildren(errorBox(e)); }
  }
  let histRows = [], cursor = '';
  async function loadHist(append) {
    const v = f();
    const q = new URLSearchParams({ limit: 200 });
    if (v.protocol) q.set('protocol', v.protocol);
    if (v.app) q.set('application_protocol', v.app);
    if (v.ip) q.set('ip', v.ip);
    if (v.port) q.set('port', v.port);
    if (v.start) q.set('start', new Date(v.start).toISOString().replace(/\.\d+Z$/, 'Z'));
    if (append && cursor) q.set('cursor', cursor);
    try {
      const r = await api('/api/v1/network/flows?' + q);
      histRows = append ? histRows.concat(r.flows || []) : (r.flows || []);
      cursor = r.next_cursor || '';
      more.hidden = !cursor;
      histErr.replaceChildren();
      histT.setRows(histRows);
    } catch (e) { histErr.replaceChildren(errorBox(e)); }
  }
  more.addEventListener('click', () => loadHist(true));
  form.addEventListener('submit', (e) => { e.preventDefault(); loadLive(); loadHist(false); });
  loadLive();
  loadHist(false);
  const t = setInterval(loadLive, 5000);
  return () => clearInterval(t);
}
