// A plain-textarea editor with a line-number gutter and errors marked at their line.
import { h, clear } from './dom.js';

// createEditor returns {el, value, setValue, setErrors, focusLine}.
// onInput(text) is called after each edit.
export function createEditor({ value = '', readOnly = false, onInput, label = 'file content' } = {}) {
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const ta = h('textarea', {
    spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off',
    'aria-label': label, readOnly, 'data-test': 'editor',
  });
  ta.value = value;
  const errList = h('ul', { class: 'editor-errors', 'data-test': 'editor-errors' });
  const box = h('div', { class: 'editor' }, gutter, ta);
  const el = h('div', { class: 'editor-wrap' }, box, errList);
  let errors = [];
  let count = -1;

  function renderGutter() {
    const n = Math.max(1, ta.value.split('\n').length);
    const bad = new Set(errors.map((e) => e.line));
    if (n !== count || gutter.dataset.bad !== [...bad].join(',')) {
      clear(gutter);
      const frag = document.createDocumentFragment();
      for (let i = 1; i <= n; i++) {
        const e = errors.find((x) => x.line === i);
        frag.appendChild(h('div', { class: 'ln' + (e ? ' err' : ''), title: e ? e.message : null }, i));
      }
      gutter.appendChild(frag);
      count = n;
      gutter.dataset.bad = [...bad].join(',');
    }
    gutter.scrollTop = ta.scrollTop;
  }

  ta.addEventListener('scroll', () => { gutter.scrollTop = ta.scrollTop; });
  ta.addEventListener('input', () => {
    renderGutter();
    if (onInput) onInput(ta.value);
  });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.metaKey && !ta.readOnly) {
      e.preventDefault();
      // execCommand keeps the browser's undo history; fall back to setRangeText.
      if (!document.execCommand('insertText', false, '  ')) {
        ta.setRangeText('  ', ta.selectionStart, ta.selectionEnd, 'end');
        ta.dispatchEvent(new Event('input'));
      }
    }
  });

  function focusLine(line, column = 1) {
    const ls = ta.value.split('\n');
    let pos = 0;
    for (let i = 0; i < line - 1 && i < ls.length; i++) pos += ls[i].length + 1;
    pos += Math.max(0, Math.min(column - 1, (ls[line - 1] || '').length));
    ta.focus();
    ta.setSelectionRange(pos, pos);
    const lh = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (line - 5) * lh);
    gutter.scrollTop = ta.scrollTop;
  }

  function setErrors(errs, source) {
    errors = (errs || []).filter((e) => e && e.line > 0);
    clear(errList);
    for (const e of errs || []) {
      const where = e.line > 0 ? 'Line ' + e.line + (e.column > 0 ? ', column ' + e.column : '') + ': ' : '';
      errList.appendChild(h('li', {
        'data-line': e.line || '', title: 'Go to the line',
        onclick: () => { if (e.line > 0) focusLine(e.line, e.column); },
      }, where, e.message, (e.source || source) ? h('span', { class: 'muted small' }, ' (' + (e.source || source) + ')') : null));
    }
    count = -1;
    renderGutter();
  }

  renderGutter();
  return {
    el,
    textarea: ta,
    get value() { return ta.value; },
    setValue(v) { ta.value = v; count = -1; renderGutter(); },
    setErrors,
    focusLine,
  };
}
