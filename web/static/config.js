// Config view (tokens redacted by the API) and the sensor's own health.
import { api, h, fmtNum, errorBox } from './app.js';

export function mount(el) {
  const health = h('section', { class: 'card', id: 'health', 'aria-labelledby': 'h-health' }, h('h2', { id: 'h-health' }, 'Sensor health'));
  const cfg = h('section', { class: 'card', id: 'config', 'aria-labelledby': 'h-config' }, h('h2', { id: 'h-config' }, 'Configuration in force'));
  el.append(h('h1', {}, 'Configuration and health'), h('div', { class: 'grid' }, health, cfg));
  async function load() {
    const body = [];
    try {
      const hz = await fetch('/healthz').then((r) => r.json());
      body.push(h('p', {}, 'Status: ', h('b', { class: hz.status === 'ok' ? 'ok' : 'error', id: 'health-status' }, hz.status),
        hz.reason ? ' – ' + hz.reason : '', ' · capture ', hz.capture_running ? 'running' : 'stopped'));
    } catch (e) { body.push(errorBox(e)); }
    try {
      const st = await api('/api/v1/network/stats');
      const f = st.flows || {};
      const rows = [
        ['Packets captured', fmtNum(st.packets)], ['Kernel drops', fmtNum(st.drops)],
        ['Ring freezes', fmtNum((st.queues || []).reduce((a, q) => a + (q.freezes || 0), 0))],
        ['Active flows', fmtNum(f.active)], ['Flows created', fmtNum(f.created)], ['Flows ended', fmtNum(f.ended)],
        ['Flows evicted (table full)', fmtNum(f.evicted)], ['Non-IP frames', fmtNum(st.non_ip_frames)],
      ];
      for (const [k, v] of Object.entries(st.decode_errors || {})) rows.push(['Decode errors: ' + k, fmtNum(v)]);
      const d = st.degraded;
      if (d) {
        // The overload degradation (docs/architecture.md, "Overload"): the
        // level now and what each step has shed so far.
        rows.push(['Degraded mode now', d.mode || 'normal'],
          ['New flows without detection (overload)', fmtNum(d.detection_skipped)],
          ['Connections not sampled by the scan tracker', fmtNum(d.scan_skipped)],
          ['Flows ended early (emergency timeouts)', fmtNum(d.emergency_evicted)]);
        for (const [k, v] of Object.entries(d.entered || {})) rows.push(['Times entered: ' + k, fmtNum(v)]);
      }
      body.push(h('table', { id: 'health-table', class: 'kv' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v))))));
    } catch (e) { body.push(errorBox(e)); }
    try {
      const text = await api('/metrics');
      const pick = /^netsentry_(flow_records_dropped_total|flows_detection_skipped_total|api_stream_dropped_total|flow_sink_queue_batches|scan_sources_over|alert_instance_overflow_total)(\{[^}]*\})? (\S+)/gm;
      const rows = [];
      for (const m of String(text).matchAll(pick)) rows.push(h('tr', {}, h('th', { scope: 'row' }, m[1] + (m[2] || '')), h('td', { class: 'num' }, fmtNum(Number(m[3])))));
      if (rows.length) body.push(h('h2', { style: 'margin-top:12px' }, 'Loss and overload counters'), h('div', { class: 'tablewrap' }, h('table', { class: 'kv' }, h('tbody', {}, rows))));
    } catch (e) { body.push(errorBox(e)); }
    health.replaceChildren(h('h2', { id: 'h-health' }, 'Sensor health'), ...body);
    try {
      const c = await api('/api/v1/config');
      cfg.replaceChildren(h('h2', { id: 'h-config' }, 'Configuration in force'),
        h('p', { class: 'muted' }, 'Tokens and the SMTP password are redacted by the API (<redacted>). Change it with PUT /api/v1/config or the file and SIGHUP.'),
        h('pre', { id: 'config-json', tabindex: 0 }, JSON.stringify(c, null, 2)));
    } catch (e) { cfg.replaceChildren(h('h2', {}, 'Configuration'), errorBox(e)); }
  }
  load();
  const t = setInterval(load, 10000);
  return () => clearInterval(t);
}
