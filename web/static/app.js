// NetSentry dashboard: the shell (token, API calls, the event stream, the
// router). Each page is a module exporting mount(el, ctx) -> cleanup.

const TOKEN_KEY = 'netsentry.token';
const pages = {
  overview: () => import('./overview.js'),
  connections: () => import('./connections.js'),
  hosts: () => import('./hosts.js'),
  scanners: () => import('./scanners.js'),
  alerts: () => import('./alerts.js'),
  config: () => import('./config.js'),
};

// nsStats is read by the browser tests: when the first live chart point
// was drawn (ms since navigation start) and how many points each live
// chart holds.
window.nsStats = { firstPoint: null, points: {} };

export class APIError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || ('HTTP ' + status));
    this.status = status;
    this.problem = problem || {};
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function headers(extra) {
  const h = Object.assign({}, extra);
  const t = token();
  if (t) h['Authorization'] = 'Bearer ' + t;
  return h;
}

let loginWaiters = [];
function askToken(message) {
  const dlg = document.getElementById('login');
  document.getElementById('login-error').textContent = message || '';
  if (!dlg.open) dlg.showModal();
  document.getElementById('login-token').focus();
  return new Promise((resolve) => loginWaiters.push(resolve));
}

// api fetches a JSON document from the API; a 401 asks for a token and
// retries; other errors throw APIError with the problem document.
export async function api(path, opts = {}) {
  for (;;) {
    const init = { method: opts.method || 'GET', headers: headers(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}) };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    if (opts.signal) init.signal = opts.signal;
    const r = await fetch(path, init);
    if (r.status === 401) {
      const p = await r.json().catch(() => ({}));
      await askToken(token() ? 'Wrong token: ' + (p.detail || '') : '');
      continue;
    }
    const ct = r.headers.get('Content-Type') || '';
    const body = ct.includes('json') ? await r.json() : await r.text();
    if (!r.ok && r.status !== 304) throw new APIError(r.status, typeof body === 'object' ? body : { detail: body });
    return body;
  }
}

// The event stream (/api/v1/stream, Server-Sent Events) read with fetch so
// that it can carry the Authorization header; one per tab, shared by the
// pages that listen.
const listeners = new Set();
let streamAbort = null;
export function onStream(fn) {
  listeners.add(fn);
  if (!streamAbort) startStream();
  return () => {
    listeners.delete(fn);
    if (listeners.size === 0 && streamAbort) { streamAbort.abort(); streamAbort = null; }
  };
}

async function startStream() {
  const ctl = new AbortController();
  streamAbort = ctl;
  while (streamAbort === ctl) {
    try {
      const r = await fetch('/api/v1/stream', { headers: headers({ Accept: 'text/event-stream' }), signal: ctl.signal });
      if (r.status === 401) { await askToken(''); continue; }
      if (!r.ok) throw new Error('stream: HTTP ' + r.status);
      setStatus('live', 'ok');
      const rd = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let ev = 'message', data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) ev = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (!data) continue;
          let doc;
          try { doc = JSON.parse(data); } catch { continue; }
          for (const fn of listeners) fn(ev, doc);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      setStatus('stream lost; retrying', 'error');
    }
    if (streamAbort !== ctl) return;
    await new Promise((res) => setTimeout(res, 2000));
  }
}

export function setStatus(text, cls) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.className = cls || '';
}

// Small DOM helpers.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
export function fmtBytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '–';
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? Math.round(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}
export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits });
}

// errorBox renders an API error: the message and every listed problem.
export function errorBox(err) {
  const p = (err && err.problem) || {};
  return h('div', { class: 'error', role: 'alert' },
    h('p', {}, String(err && err.message || err)),
    p.errors && p.errors.length ? h('ul', { class: 'errors' }, p.errors.map((e) => h('li', {}, e))) : null);
}

// chart colours from the theme
export function color(i) {
  return getComputedStyle(document.documentElement).getPropertyValue('--c' + ((i % 5) + 1)).trim() || '#0b62c4';
}
export function themeColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue('--' + name).trim();
}

// The router: #page?query.
let cleanup = null;
let seq = 0;
async function route() {
  const hash = location.hash.replace(/^#/, '') || 'overview';
  const name = hash.split('?')[0];
  const load = pages[name] || pages.overview;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const my = ++seq;
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } cleanup = null; }
  const main = document.getElementById('main');
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  const mod = await load();
  if (my !== seq) return;
  main.replaceChildren();
  document.title = 'NetSentry – ' + name;
  cleanup = mod.mount(main, { api, onStream, h }) || null;
}

function initTheme() {
  const saved = localStorage.getItem('netsentry.theme');
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === 'dark'
      : matchMedia('(prefers-color-scheme: dark)').matches;
    const next = dark ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('netsentry.theme', next);
    window.dispatchEvent(new Event('themechange'));
  });
}

function initLogin() {
  const form = document.getElementById('login-form');
  form.addEventListener('submit', () => {
    const t = document.getElementById('login-token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById('logout').hidden = !t;
    const w = loginWaiters; loginWaiters = [];
    w.forEach((f) => f());
  });
  const out = document.getElementById('logout');
  out.hidden = !token();
  out.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
}

initTheme();
initLogin();
window.addEventListener('hashchange', route);
route();
