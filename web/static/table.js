// A sortable, paged table.
import { h } from './app.js';

// cols: [{ key, label, num, value(row) -> sortable, render(row) -> node|string }]
export function makeTable(id, caption, cols, { pageSize = 50, sort = null, desc = true } = {}) {
  let rows = [];
  let page = 0;
  const state = { sort, desc };
  const wrap = h('div', { class: 'tablewrap' });
  const pager = h('div', { class: 'row', 'aria-label': caption + ' pages' });
  const root = h('div', {}, wrap, pager);
  function sorted() {
    if (!state.sort) return rows;
    const c = cols.find((c) => c.key === state.sort);
    const val = c.value || ((r) => r[c.key]);
    const out = rows.slice();
    out.sort((a, b) => {
      const x = val(a), y = val(b);
      const r = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y), 'en', { numeric: true });
      return state.desc ? -r : r;
    });
    return out;
  }
  function render() {
    const all = sorted();
    const pages = Math.max(1, Math.ceil(all.length / pageSize));
    page = Math.min(page, pages - 1);
    const shown = all.slice(page * pageSize, (page + 1) * pageSize);
    const head = h('tr', {}, cols.map((c) => {
      const active = state.sort === c.key;
      const btn = h('button', { type: 'button', 'aria-label': 'Sort by ' + c.label }, c.label + (active ? (state.desc ? ' ▼' : ' ▲') : ''));
      btn.addEventListener('click', () => {
        if (state.sort === c.key) state.desc = !state.desc; else { state.sort = c.key; state.desc = !!c.num; }
        render();
        wrap.querySelector('th[data-key="' + c.key + '"] button').focus();
      });
      return h('th', { scope: 'col', class: c.num ? 'num' : '', 'data-key': c.key, 'aria-sort': active ? (state.desc ? 'descending' : 'ascending') : 'none' }, btn);
    }));
    const body = shown.map((r) => h('tr', {}, cols.map((c) => h('td', { class: c.num ? 'num' : '' }, c.render ? c.render(r) : (r[c.key] ?? '–')))));
    wrap.replaceChildren(h('table', { id },
      h('caption', { class: 'muted', style: 'text-align:left' }, caption + ' · ' + all.length + ' rows'),
      h('thead', {}, head),
      h('tbody', {}, body.length ? body : h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'Nothing to show.')))));
    const prev = h('button', { type: 'button', disabled: page === 0 }, '‹ Previous');
    const next = h('button', { type: 'button', disabled: page >= pages - 1 }, 'Next ›');
    prev.addEventListener('click', () => { page--; render(); });
    next.addEventListener('click', () => { page++; render(); });
    pager.replaceChildren(prev, h('span', { class: 'muted' }, 'page ' + (page + 1) + ' of ' + pages), next);
  }
  render();
  return {
    el: root,
    setRows(r) { rows = r || []; render(); },
  };
}
