// Toasts: short messages in the corner. An error replaces the error shown
// before it (they never stack), leaves by itself after a few seconds or when
// dismissed, and is dropped when the user moves to another page; the router
// calls clearErrors on every navigation.
import { h } from './dom.js';

const box = h('div', { class: 'flash', 'aria-live': 'polite', 'data-test': 'flash' });
const ERROR_MS = 8000, INFO_MS = 4000, MAX = 3;

function dismiss(m) {
  clearTimeout(m.timer);
  m.remove();
}

// toast shows message; kind is 'info', 'ok' or 'error'; code (e.g. "422
// invalid") is shown small beside it.
export function toast(message, kind = 'info', code = '') {
  if (!box.isConnected) document.body.appendChild(box);
  if (kind === 'error') for (const old of [...box.querySelectorAll('.msg.error')]) dismiss(old);
  const m = h('div', { class: 'msg ' + kind, role: kind === 'error' ? 'alert' : 'status' },
    h('button', { class: 'x', title: 'Dismiss', 'aria-label': 'Dismiss', onclick: () => dismiss(m) }, '×'),
    message, code ? h('span', { class: 'code' }, code) : null);
  box.appendChild(m);
  while (box.children.length > MAX) dismiss(box.firstChild);
  const ms = kind === 'error' ? ERROR_MS : INFO_MS;
  // A message being read (pointer over it, or focus on its button) stays.
  const arm = () => { clearTimeout(m.timer); m.timer = setTimeout(() => dismiss(m), ms); };
  m.addEventListener('mouseenter', () => clearTimeout(m.timer));
  m.addEventListener('mouseleave', arm);
  m.addEventListener('focusin', () => clearTimeout(m.timer));
  m.addEventListener('focusout', arm);
  arm();
}

// clearErrors removes every error toast (confirmations may stay: "Service
// created" is still true on the page it leads to).
export function clearErrors() {
  for (const m of [...box.querySelectorAll('.msg.error')]) dismiss(m);
}
