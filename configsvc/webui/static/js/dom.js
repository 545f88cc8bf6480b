// Small DOM helpers. Text always goes in through text nodes, never parsed as markup,
// so content from the server (file contents, messages, labels) cannot inject markup.

// h builds an element: h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child, [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'readOnly' || k === 'selected') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// clear removes every child of el and returns it.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// mount replaces el's children.
export function mount(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// when formats an RFC 3339 time as "5 min ago", with the exact UTC time as the title.
export function when(t) {
  if (!t) return h('span', { class: 'muted' }, '—');
  const d = new Date(t);
  if (isNaN(d)) return h('span', {}, String(t));
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, ago(d));
}

export function ago(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const fut = s < 0, a = Math.abs(s);
  let out;
  if (a < 45) out = 'seconds';
  else if (a < 90 * 60) out = Math.round(a / 60) + ' min';
  else if (a < 36 * 3600) out = Math.round(a / 3600) + ' h';
  else out = Math.round(a / 86400) + ' d';
  if (out === 'seconds') return fut ? 'in a few seconds' : 'just now';
  return fut ? 'in ' + out : out + ' ago';
}

const openModals = new Set();

// closeModals closes every open dialog (used when the page changes).
export function closeModals() {
  for (const close of [...openModals]) close();
}

// modal shows a dialog; it returns {el, close}. Escape and the backdrop close it.
export function modal(title, ...body) {
  const box = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title }, h('h2', {}, title), body);
  const back = h('div', { class: 'modal-back' }, box);
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  function close() {
    openModals.delete(close);
    document.removeEventListener('keydown', onKey);
    back.remove();
  }
  openModals.add(close);
  back.addEventListener('mousedown', (e) => { if (e.target === back) close(); });
  document.addEventListener('keydown', onKey);
  document.body.appendChild(back);
  return { el: box, close };
}

// globMatch reports whether name matches a grant pattern with * and ? (the
// server's configsvc.MatchGlob rule; the server decides, this only hides controls).
export function globMatch(pattern, name) {
  if (/[\[\]\\\/]/.test(pattern)) return pattern === name;
  const re = '^' + pattern.replace(/[.+^${}()|]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$';
  return new RegExp(re).test(name);
}
