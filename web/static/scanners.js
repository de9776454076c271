// Scanners: behaviour signals per source over the scan window.
import { api, h, fmtNum, errorBox } from './app.js';
import { makeTable } from './table.js';

export function mount(el) {
  const t = makeTable('scanners-table', 'Sources by distinct destination ports', [
    { key: 'src_ip', label: 'Source' },
    { key: 'unique_dest_port_count', label: 'Distinct ports', num: true, render: (r) => fmtNum(r.unique_dest_port_count) + (r.approximate ? ' ≈' : '') },
    { key: 'unique_dest_host_count', label: 'Distinct hosts', num: true, render: (r) => fmtNum(r.unique_dest_host_count) + (r.approximate ? ' ≈' : '') },
    { key: 'connection_count', label: 'Connections', num: true, render: (r) => fmtNum(r.connection_count) },
    { key: 'frag', label: 'Fragment anomalies (tiny/overlap/conflict)', value: (r) => fragSum(r), render: (r) => {
      const f = r.fragment_anomalies || {};
      return [f.tiny, f.overlap, f.conflict].map((x) => fmtNum(x || 0)).join(' / ');
    } },
  ], { sort: 'unique_dest_port_count' });
  const info = h('p', { class: 'muted' });
  const err = h('div');
  el.append(h('h1', {}, 'Scanners and behaviour signals'), info, err, h('section', { class: 'card' }, t.el));
  async function load() {
    try {
      const r = await api('/api/v1/network/scanners?limit=1000');
      info.textContent = 'Window: ' + r.window_seconds + ' s · ' + r.sources + ' sources tracked. ≈ marks counts estimated by a sketch.';
      t.setRows(r.scanners || []);
      err.replaceChildren();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  }
  load();
  const iv = setInterval(load, 5000);
  return () => clearInterval(iv);
}

function fragSum(r) {
  const f = r.fragment_anomalies || {};
  return (f.tiny || 0) + (f.overlap || 0) + (f.conflict || 0);
}
