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

// mount replaces el's children. When the focus was on one of them, it
// moves to its successor (the new element with the same data-test,
// data-file or aria-label), so re-rendering a toolbar or a live table does
// not drop a keyboard user's place.
export function mount(el, ...children) {
  const key = focusKey(el);
  clear(el);
  append(el, children);
  if (key) refocus(el, key);
  return el;
}

// focusKey returns a selector for the focused element inside el, or ''.
function focusKey(el) {
  const a = document.activeElement;
  if (!a || a === el || !el.contains(a)) return '';
  for (const attr of ['data-test', 'data-file', 'aria-label']) {
    const v = a.getAttribute(attr);
    if (v) return '[' + attr + '="' + CSS.escape(v) + '"]';
  }
  return '';
}

// refocus focuses the element matching key inside el, if focus is lost.
function refocus(el, key) {
  if (document.activeElement && document.activeElement !== document.body) return;
  const next = el.querySelector(key);
  if (next) next.focus();
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

// openModals holds the close function of every open dialog, the newest last.
const openModals = [];

// closeModals closes every open dialog (used when the page changes).
export function closeModals() {
  for (const close of [...openModals].reverse()) close();
}

const focusable = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"]), [contenteditable="true"]';

// modal shows a dialog; it returns {el, close}. Focus moves into it (to an
// [autofocus] element, else its first field or button), Tab and Shift+Tab
// stay inside, Escape and the backdrop close it, and closing gives focus
// back to the element that had it before. The keys are watched on the
// document, so they work wherever the focus is (even on nothing, after the
// element that had it was replaced); only the newest dialog answers them.
// onClose(fn) registers fn to run when the dialog closes, however it does
// (a button, Escape, the backdrop, or leaving the page).
export function modal(title, ...body) {
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const box = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': id, tabindex: '-1' }, h('h2', { id }, title), body);
  const back = h('div', { class: 'modal-back' }, box);
  const before = document.activeElement;
  // The element may be re-rendered while the dialog is open: its successor
  // (same data-test) gets the focus back then.
  const beforeKey = before && before.getAttribute && before.getAttribute('data-test');
  const onKey = (e) => {
    if (openModals[openModals.length - 1] !== close) return;
    if (e.key === 'Escape' && !e.defaultPrevented) { e.preventDefault(); close(); return; }
    if (e.key !== 'Tab') return;
    const els = [...box.querySelectorAll(focusable)].filter((x) => x.offsetParent !== null || x === document.activeElement);
    if (!els.length) { e.preventDefault(); box.focus(); return; }
    const first = els[0], last = els[els.length - 1];
    if (!box.contains(document.activeElement)) { e.preventDefault(); (e.shiftKey ? last : first).focus(); }
    else if (e.shiftKey && (document.activeElement === first || document.activeElement === box)) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
  };
  let open = true;
  const onClose = [];
  function close() {
    if (!open) return;
    open = false;
    for (const fn of onClose.splice(0)) { try { fn(); } catch (_) { /* a failed clean-up must not keep the dialog open */ } }
    openModals.splice(openModals.indexOf(close), 1);
    document.removeEventListener('keydown', onKey);
    back.remove();
    const target = before && before.isConnected ? before : beforeKey ? document.querySelector('[data-test="' + CSS.escape(beforeKey) + '"]') : null;
    if (target && typeof target.focus === 'function') target.focus();
  }
  openModals.push(close);
  back.addEventListener('mousedown', (e) => { if (e.target === back) close(); });
  document.addEventListener('keydown', onKey);
  document.body.appendChild(back);
  const first = box.querySelector('[autofocus]') || box.querySelector('input:not([disabled]), select, textarea') || box.querySelector(focusable);
  (first || box).focus();
  return { el: box, close, focus: (el) => el.focus(), onClose: (fn) => { if (open) onClose.push(fn); else fn(); } };
}

// tableWrap puts a table in a box that scrolls sideways on a narrow screen;
// the box is a labelled region that takes the focus, so that it can be
// scrolled with the keyboard too.
export function tableWrap(label, table) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

// globMatch reports whether name matches a grant pattern with * and ? (the
// server's configsvc.MatchGlob rule; the server decides, this only hides controls).
export function globMatch(pattern, name) {
  if (/[\[\]\\\/]/.test(pattern)) return pattern === name;
  const re = '^' + pattern.replace(/[.+^${}()|]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$';
  return new RegExp(re).test(name);
}
