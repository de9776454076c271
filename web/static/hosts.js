// Top hosts and the protocol distribution.
import { api, h, fmtBytes, fmtNum, errorBox } from './app.js';
import { makeTable } from './table.js';

function bars(items, label, value, guess) {
  const max = Math.max(1, ...items.map(value));
  return h('table', { class: 'bars' }, h('tbody', {}, items.map((it) => h('tr', {},
    h('th', { scope: 'row' }, label(it)),
    h('td', { style: 'width:60%' }, h('div', { class: 'bar' + (guess && guess(it) ? ' guess' : ''), style: 'width:' + (100 * value(it) / max).toFixed(1) + '%' })),
    h('td', { class: 'num' }, fmtBytes(value(it)))))));
}

export function mount(el) {
  const hostT = makeTable('hosts-table', 'Hosts by bytes (frame bytes, both directions)', [
    { key: 'ip', label: 'Host' },
    { key: 'bytes', label: 'Bytes', num: true, render: (r) => fmtNum(r.bytes) },
    { key: 'bytes_tx', label: 'Bytes sent', num: true, render: (r) => fmtNum(r.bytes_tx) },
    { key: 'bytes_rx', label: 'Bytes received', num: true, render: (r) => fmtNum(r.bytes_rx) },
    { key: 'packets', label: 'Packets', num: true, render: (r) => fmtNum(r.packets) },
    { key: 'packets_tx', label: 'Pkts sent', num: true, render: (r) => fmtNum(r.packets_tx) },
    { key: 'packets_rx', label: 'Pkts received', num: true, render: (r) => fmtNum(r.packets_rx) },
    { key: 'flows_initiated', label: 'Flows out', num: true },
    { key: 'flows_answered', label: 'Flows in', num: true },
    { key: 'geo', label: 'Where', value: (r) => geoText(r.geo), render: (r) => geoText(r.geo) },
  ], { sort: 'bytes' });
  const protoT = makeTable('protocols-table', 'Application protocols (guessed: named by the server port alone)', [
    { key: 'name', label: 'Protocol', value: (r) => r.name + (r.guessed ? ' (guessed)' : ''),
      render: (r) => h('span', { class: 'pill' + (r.guessed ? ' guess' : '') }, r.name + (r.guessed ? ' (guessed)' : '')) },
    { key: 'flows', label: 'Flows', num: true, render: (r) => fmtNum(r.flows) },
    { key: 'packets', label: 'Packets', num: true, render: (r) => fmtNum(r.packets) },
    { key: 'bytes', label: 'Bytes', num: true, render: (r) => fmtNum(r.bytes) },
    { key: 'bytes_percent', label: '% of bytes', num: true, render: (r) => fmtNum(r.bytes_percent, 1) },
  ], { sort: 'bytes' });
  const hostBars = h('div', { 'aria-label': 'Top 10 hosts by bytes' });
  const protoBars = h('div', { 'aria-label': 'Protocol distribution by bytes' });
  const err = h('div');
  el.append(h('h1', {}, 'Hosts and protocols'), err,
    h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Top 10 hosts'), hostBars),
      h('section', { class: 'card' }, h('h2', {}, 'Protocol distribution'), protoBars,
        h('p', { class: 'muted' }, 'Hatched bars are guessed from the port; solid bars were detected from payload.'))),
    h('section', { class: 'card', style: 'margin-top:12px' }, hostT.el),
    h('section', { class: 'card', style: 'margin-top:12px' }, protoT.el));
  async function load() {
    try {
      const [hs, ps] = await Promise.all([api('/api/v1/network/hosts?limit=1000'), api('/api/v1/network/protocols')]);
      const hosts = hs.hosts || [];
      const protos = ps.protocols || [];
      hostT.setRows(hosts);
      protoT.setRows(protos);
      hostBars.replaceChildren(hosts.length ? bars(hosts.slice(0, 10), (x) => x.ip, (x) => x.bytes) : h('p', { class: 'muted' }, 'No hosts yet.'));
      protoBars.replaceChildren(protos.length ? bars(protos, (x) => x.name + (x.guessed ? ' (guessed)' : ''), (x) => x.bytes, (x) => x.guessed) : h('p', { class: 'muted' }, 'No flows yet.'));
      err.replaceChildren();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  }
  load();
  const t = setInterval(load, 5000);
  return () => clearInterval(t);
}

function geoText(g) {
  if (!g) return '';
  return [g.country, g.city, g.asn ? 'AS' + g.asn : '', g.as_org].filter(Boolean).join(' ');
}
