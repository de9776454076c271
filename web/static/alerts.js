// Alerts: active alerts, history, the rules and a rule editor that sends
// the rule to the API and shows every problem its validation finds.
import { api, h, fmtNum, errorBox } from './app.js';
import { makeTable } from './table.js';

const alertCols = [
  { key: 'rule', label: 'Rule' },
  { key: 'severity', label: 'Severity', render: (a) => h('span', { class: 'sev-' + a.severity }, a.severity) },
  { key: 'status', label: 'Status' },
  { key: 'group_key', label: 'Group', render: (a) => a.group_key || '–' },
  { key: 'values', label: 'Values', value: (a) => JSON.stringify(a.values), render: (a) => Object.entries(a.values || {}).map(([k, v]) => k + ' = ' + fmtNum(v, 3)).join(', ') },
  { key: 'starts_at', label: 'Since', render: (a) => new Date(a.starts_at).toLocaleString() },
  { key: 'ends_at', label: 'Ended', render: (a) => a.ends_at ? new Date(a.ends_at).toLocaleString() : '–' },
];

// The metrics docs/alerting.md lists (host metrics: as /api/v1/metrics names them).
const METRICS = ['network.connection_count', 'network.unique_dest_port_count', 'network.unique_dest_host_count',
  'network.fragment_anomalies', 'network.packets', 'network.bytes', 'network.drops', 'network.malformed',
  'network.flows.created', 'network.flows.ended', 'network.flows.evicted', 'network.protocol.flows',
  'network.protocol.packets', 'network.protocol.bytes', 'cpu.usage', 'memory.usage_percent', 'disk.usage_percent'];

function sel(id, name, opts, value) {
  return h('select', { id, name }, opts.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
}
function field(id, label, input) {
  return h('div', {}, h('label', { for: id }, label), input);
}

export function mount(el) {
  const activeT = makeTable('alerts-active', 'Active alerts', alertCols, { sort: 'starts_at' });
  const histT = makeTable('alerts-history', 'Alert history (last 24 hours)', alertCols, { sort: 'starts_at' });
  const rulesBox = h('div', { class: 'tablewrap', id: 'rules' });
  const err = h('div');
  let editing = null;
  const form = h('form', { id: 'rule-form', 'aria-labelledby': 'h-editor', novalidate: true });
  const result = h('div', { id: 'rule-result', role: 'status', 'aria-live': 'polite' });
  const metricList = h('datalist', { id: 'metric-names' }, METRICS.map((m) => h('option', { value: m })));
  function renderForm(r) {
    const c = (r && r.conditions && r.conditions[0]) || {};
    form.replaceChildren(...[
      h('div', { class: 'row' },
        field('r-name', 'Name', h('input', { id: 'r-name', name: 'name', size: 24, value: r ? r.name : '' })),
        field('r-severity', 'Severity', sel('r-severity', 'severity', [['info', 'info'], ['warning', 'warning'], ['critical', 'critical']], r ? r.severity : 'warning')),
        field('r-throttle', 'Throttle (s)', h('input', { id: 'r-throttle', name: 'throttle_sec', type: 'number', min: 0, style: 'width:7em', value: r && r.throttle_sec !== undefined ? r.throttle_sec : '' }))),
      h('div', { class: 'row' },
        field('r-metric', 'Metric', h('input', { id: 'r-metric', name: 'metric', size: 30, list: 'metric-names', value: c.metric || '' })),
        field('r-filter', 'Filter (e.g. src_ip = $ip)', h('input', { id: 'r-filter', name: 'filter', size: 22, value: c.filter || '' })),
        field('r-comparator', 'Comparator', sel('r-comparator', 'comparator', [['gt', '>'], ['gte', '≥'], ['lt', '<'], ['lte', '≤'], ['eq', '='], ['ne', '≠']], c.comparator || 'gt')),
        field('r-threshold', 'Threshold', h('input', { id: 'r-threshold', name: 'threshold', inputmode: 'decimal', style: 'width:8em', value: c.threshold ?? '' })),
        field('r-range', 'Time range', h('input', { id: 'r-range', name: 'time_range', size: 6, placeholder: '1m', value: c.time_range || '' }))),
      h('div', { class: 'row' },
        field('r-desc', 'Description', h('input', { id: 'r-desc', name: 'description', size: 60, value: r && r.description ? r.description : '' }))),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, editing ? 'Save rule ' + editing : 'Create rule'),
        editing ? h('button', { type: 'button', onclick: () => { editing = null; renderForm(null); } }, 'New rule instead') : null),
      result, metricList].filter(Boolean));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const cond = { metric: v.metric, comparator: v.comparator };
    // The threshold is sent as typed so that the API judges it.
    cond.threshold = v.threshold === '' ? undefined : (isNaN(Number(v.threshold)) ? v.threshold : Number(v.threshold));
    if (v.filter) cond.filter = v.filter;
    if (v.time_range) cond.time_range = v.time_range;
    const rule = { name: v.name, severity: v.severity, conditions: [cond] };
    if (v.description) rule.description = v.description;
    if (v.throttle_sec !== '') rule.throttle_sec = Number(v.throttle_sec);
    try {
      const saved = await api(editing ? '/api/v1/alerts/' + encodeURIComponent(editing) : '/api/v1/alerts', { method: editing ? 'PUT' : 'POST', body: rule });
      editing = null;
      renderForm(null);
      result.replaceChildren(h('p', { class: 'ok', id: 'rule-ok' }, 'Saved rule ' + saved.id + ' (' + saved.name + ').'));
      load();
    } catch (e) {
      result.replaceChildren(h('div', { id: 'rule-error' }, errorBox(e)));
    }
  });
  renderForm(null);
  el.append(h('h1', {}, 'Alerts'), err,
    h('section', { class: 'card' }, activeT.el),
    h('section', { class: 'card', style: 'margin-top:12px', 'aria-labelledby': 'h-rules' }, h('h2', { id: 'h-rules' }, 'Rules'), rulesBox),
    h('section', { class: 'card', style: 'margin-top:12px' }, h('h2', { id: 'h-editor' }, 'Rule editor'),
      h('p', { class: 'muted' }, 'The API checks the rule; every problem it finds is listed here.'), form),
    h('section', { class: 'card', style: 'margin-top:12px' }, histT.el));

  function renderRules(rules) {
    if (!rules.length) { rulesBox.replaceChildren(h('p', { class: 'muted' }, 'No rules.')); return; }
    rulesBox.replaceChildren(h('table', { id: 'rules-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Severity', 'Conditions', 'Throttle', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rules.map((r) => h('tr', {},
        h('td', {}, r.name), h('td', { class: 'sev-' + r.severity }, r.severity),
        h('td', {}, (r.conditions || []).map((c) => c.metric + (c.filter ? '{' + c.filter + '}' : '') + ' ' + c.comparator + ' ' + c.threshold + (c.time_range ? ' over ' + c.time_range : '')).join(' ' + (r.condition_logic || 'AND') + ' ')),
        h('td', {}, r.throttle_sec ?? '–'),
        h('td', {},
          h('button', { type: 'button', 'aria-label': 'Edit rule ' + r.name, onclick: () => { editing = r.id; renderForm(r); form.querySelector('input').focus(); } }, 'Edit'), ' ',
          h('button', { type: 'button', 'aria-label': 'Delete rule ' + r.name, onclick: async () => {
            if (!confirm('Delete rule ' + r.name + '?')) return;
            try { await api('/api/v1/alerts/' + encodeURIComponent(r.id), { method: 'DELETE' }); load(); } catch (e) { err.replaceChildren(errorBox(e)); }
          } }, 'Delete')))))));
  }
  async function load() {
    try {
      const [rules, active, hist] = await Promise.all([api('/api/v1/alerts'), api('/api/v1/alerts/active'), api('/api/v1/alerts/history')]);
      renderRules(rules.rules || []);
      activeT.setRows(active.alerts || []);
      histT.setRows(hist.alerts || []);
      err.replaceChildren();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  }
  load();
  const t = setInterval(load, 10000);
  return () => clearInterval(t);
}
