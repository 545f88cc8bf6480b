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

// validTime returns t as a Date, or null when it is absent, unparsable or
// a zero time (Go's zero time.Time reads 0001-01-01T00:00:00Z: a record that
// never set it, which must not show as "739951 d ago").
export function validTime(t) {
  if (!t) return null;
  const d = new Date(t);
  if (isNaN(d) || d.getUTCFullYear() < 1971) return null;
  return d;
}

// absTime formats a Date as "2006-01-02 15:04:05 UTC".
export function absTime(d) {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

// when formats an RFC 3339 time as "5 min ago", with the absolute UTC time
// on hover; an absent or zero time shows "—".
export function when(t) {
  const d = validTime(t);
  if (!d) return h('span', { class: 'muted', title: t ? 'not reported' : null }, '—');
  return h('time', { datetime: d.toISOString(), title: absTime(d) }, ago(d));
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

const focusable = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"]), [contenteditable="true"]';

// modal shows a dialog; it returns {el, close}. Focus moves into it (to
// opts.focus, else its first field or button), Tab and Shift+Tab stay inside,
// Escape and the backdrop close it, and closing gives focus back to the
// element that had it before.
export function modal(title, ...body) {
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const box = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': id, tabindex: '-1' }, h('h2', { id }, title), body);
  const back = h('div', { class: 'modal-back' }, box);
  const before = document.activeElement;
  const onKey = (e) => {
    if (e.key === 'Escape' && !e.defaultPrevented) { e.preventDefault(); close(); return; }
    if (e.key !== 'Tab') return;
    const els = [...box.querySelectorAll(focusable)].filter((x) => x.offsetParent !== null || x === document.activeElement);
    if (!els.length) { e.preventDefault(); box.focus(); return; }
    const first = els[0], last = els[els.length - 1];
    if (!box.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    else if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  };
  let open = true;
  function close() {
    if (!open) return;
    open = false;
    openModals.delete(close);
    back.removeEventListener('keydown', onKey);
    back.remove();
    if (before && before.isConnected && typeof before.focus === 'function') before.focus();
  }
  openModals.add(close);
  back.addEventListener('mousedown', (e) => { if (e.target === back) close(); });
  back.addEventListener('keydown', onKey);
  document.body.appendChild(back);
  const first = box.querySelector('[autofocus]') || box.querySelector('input:not([disabled]), select, textarea') || box.querySelector(focusable);
  (first || box).focus();
  return { el: box, close, focus: (el) => el.focus() };
}

// globMatch reports whether name matches a grant pattern with * and ? (the
// server's configsvc.MatchGlob rule; the server decides, this only hides controls).
export function globMatch(pattern, name) {
  if (/[\[\]\\\/]/.test(pattern)) return pattern === name;
  const re = '^' + pattern.replace(/[.+^${}()|]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$';
  return new RegExp(re).test(name);
}
