// The code editor: CodeMirror 6 (static/vendor/codemirror.js, built by
// vendor/build.sh) with syntax highlighting per format, lint markers from the
// browser-side check and from the server's refusals, search and replace
// (Ctrl+F), and a list of the errors under it that moves to their line.
// Tab indents; Escape then Tab leaves the editor for the next control.
import * as cm from '../vendor/codemirror.js';
import { h, clear } from './dom.js';
import { formatOf } from './validate.js';
import { checkAsync } from './checker.js';

// highlight colours keep a contrast of 4.5:1 or more on white (WCAG AA).
const highlight = cm.HighlightStyle.define([
  { tag: [cm.tags.propertyName, cm.tags.definition(cm.tags.propertyName)], color: '#1f4e79' },
  { tag: [cm.tags.string, cm.tags.special(cm.tags.string)], color: '#1b6a2e' },
  { tag: [cm.tags.number, cm.tags.integer, cm.tags.float], color: '#8f4300' },
  { tag: [cm.tags.bool, cm.tags.null, cm.tags.atom, cm.tags.keyword], color: '#7a2a9e' },
  { tag: [cm.tags.comment, cm.tags.lineComment, cm.tags.blockComment], color: '#5a6573', fontStyle: 'italic' },
  { tag: [cm.tags.heading, cm.tags.meta, cm.tags.labelName, cm.tags.typeName], color: '#8a1f11', fontWeight: '600' },
  { tag: cm.tags.invalid, color: '#b42318' },
]);

// language returns the syntax support for a file name's format.
export function language(file) {
  switch (formatOf(file)) {
    case 'json': return cm.json();
    case 'yaml': return cm.StreamLanguage.define(cm.yaml);
    case 'toml': return cm.StreamLanguage.define(cm.toml);
    case 'properties': case 'env': return cm.StreamLanguage.define(cm.properties);
  }
  return [];
}

// baseExtensions are shared by the editor and the merge views.
export function baseExtensions(file, { readOnly = false, label = file } = {}) {
  return [
    cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.highlightSpecialChars(), cm.drawSelection(),
    cm.syntaxHighlighting(highlight), cm.bracketMatching(), cm.highlightSelectionMatches(),
    cm.search({ top: true }),
    cm.keymap.of([...cm.searchKeymap, ...cm.defaultKeymap]),
    language(file),
    cm.EditorState.readOnly.of(readOnly),
    // tabindex 0 only says what contenteditable already does (the text takes
    // the focus in tab order), so that checkers such as axe see that the
    // scrolling box holds something the keyboard can reach.
    cm.EditorView.contentAttributes.of({ 'aria-label': label, 'aria-readonly': readOnly ? 'true' : 'false', tabindex: '0' }),
  ];
}

// toRange turns a 1-based line and column (0: none) into a document range
// covering the rest of the token, or the whole line without a column.
function toRange(doc, line, column) {
  const l = doc.line(Math.min(Math.max(1, line), doc.lines));
  if (!column) return { from: l.from, to: l.to };
  const from = Math.min(l.from + Math.max(0, column - 1), l.to);
  const word = /^[^\s,:\]}]+/.exec(doc.sliceString(from, l.to));
  return { from, to: word ? from + word[0].length : Math.min(from + 1, l.to) };
}

// createEditor returns {el, view, value, setValue, setServerErrors, focusLine,
// focus, destroy}. onChange(view) runs after each edit (read the text with
// editor.value only when needed: an 18,000-line file is large);
// onErrors(list) runs with every new set of errors (browser check and
// server), each {line, column, message, source}.
export function createEditor({ value = '', readOnly = false, file = '', label = file || 'file content', onChange, onErrors, lintDelay = 300 } = {}) {
  const errList = h('ul', { class: 'editor-errors', 'data-test': 'editor-errors', 'aria-label': 'Errors in ' + label });
  let server = [];
  let view = null;
  const lintOwner = {};

  function render(errs) {
    clear(errList);
    for (const e of errs) {
      const where = e.line > 0 ? 'Line ' + e.line + (e.column > 0 ? ', column ' + e.column : '') + ': ' : '';
      const go = () => { if (e.line > 0) focusLine(e.line, e.column); };
      errList.appendChild(h('li', { 'data-line': e.line || '' },
        h('button', { class: 'link', type: 'button', title: e.line > 0 ? 'Go to line ' + e.line : null, onclick: go },
          where, e.message, e.source ? h('span', { class: 'muted small' }, ' (' + e.source + ')') : null)));
    }
    if (onErrors) onErrors(errs);
  }

  // The check runs in a worker for a large text (checker.js), one at a time
  // per editor; an answer for a text that has changed since is dropped (CM
  // drops it too), so is one that a newer check replaced (null).
  const lint = cm.linter(async (v) => {
    const doc = v.state.doc;
    const sv = server;
    const own = readOnly ? [] : await checkAsync(file, doc.toString(), lintOwner);
    if (own === null || v.state.doc !== doc) return [];
    const errs = [...sv, ...own.map((e) => ({ ...e, source: e.source || 'browser check' }))];
    render(errs);
    return errs.map((e) => {
      const r = e.line > 0 ? toRange(doc, e.line, e.column) : { from: 0, to: Math.min(1, doc.length) };
      return { ...r, severity: 'error', message: e.message, source: e.source };
    });
  }, { delay: lintDelay });

  view = new cm.EditorView({
    state: cm.EditorState.create({
      doc: value,
      extensions: [
        baseExtensions(file, { readOnly, label }),
        cm.history(), cm.indentOnInput(), cm.closeBrackets(), cm.highlightActiveLine(), cm.highlightTrailingWhitespace(),
        cm.keymap.of([...cm.closeBracketsKeymap, ...cm.historyKeymap, ...cm.lintKeymap, cm.indentWithTab]),
        cm.lintGutter(), lint,
        cm.EditorView.updateListener.of((u) => {
          if (!u.docChanged) return;
          server = []; // an edit answers the server's refusal; the next check runs after lintDelay
          if (onChange) onChange(u.view);
        }),
      ],
    }),
  });
  view.dom.setAttribute('data-test', 'editor');
  const el = h('div', { class: 'editor-wrap' + (readOnly ? ' readonly' : '') }, view.dom, errList);

  function focusLine(line, column = 1) {
    const r = toRange(view.state.doc, line, column);
    view.dispatch({ selection: { anchor: r.from }, effects: cm.EditorView.scrollIntoView(r.from, { y: 'center' }) });
    view.focus();
  }

  return {
    el,
    view,
    get value() { return view.state.doc.toString(); },
    setValue(v) { view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: v } }); },
    // setServerErrors shows the server's errors ([{line, column, message}])
    // beside the browser's until the next edit clears them.
    setServerErrors(errs) {
      server = (errs || []).map((e) => ({ ...e, source: e.source || 'server' }));
      cm.forceLinting(view);
    },
    focusLine,
    focus() { view.focus(); },
    destroy() { view.destroy(); },
  };
}

// mergeView shows two texts side by side (a: before, b: after), both read
// only, with the changed chunks marked and whitespace made visible; long
// unchanged stretches fold away.
export function mergeView(file, before, after, { labels = ['before', 'after'] } = {}) {
  const ext = (label) => [baseExtensions(file, { readOnly: true, label: file + ', ' + label }), cm.EditorView.editable.of(true), cm.highlightWhitespace()];
  const mv = new cm.MergeView({
    a: { doc: before, extensions: ext(labels[0]) },
    b: { doc: after, extensions: ext(labels[1]) },
    collapseUnchanged: { margin: 3, minSize: 6 },
    gutter: true,
  });
  mv.dom.classList.add('merge');
  return mv;
}
