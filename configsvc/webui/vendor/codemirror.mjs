// The entry of static/vendor/codemirror.js: the editor the console takes from
// npm, re-exported from one ES module so that the console's own modules import
// a single committed file (the YAML and TOML parsers of the checks are in
// parsers.mjs). build.sh bundles it with esbuild; edit this list, run
// build.sh, and commit the rebuilt bundle with the lock file.
//
// YAML is highlighted by the stream mode of legacy-modes, not lang-yaml's
// full parser: a stream parser skips to the lines in view, so typing in the
// middle of an 18,000-line file stays well under a frame (perf_test.go).
export { EditorState, EditorSelection, Compartment, StateEffect, StateField, Transaction } from '@codemirror/state';
export {
  EditorView, ViewPlugin, Decoration, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, highlightWhitespace, highlightTrailingWhitespace, drawSelection, dropCursor,
  rectangularSelection, crosshairCursor, placeholder,
} from '@codemirror/view';
export { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
export {
  syntaxHighlighting, HighlightStyle, bracketMatching, indentOnInput, foldGutter, foldKeymap, StreamLanguage,
  LanguageSupport,
} from '@codemirror/language';
export { tags } from '@lezer/highlight';
export { search, searchKeymap, highlightSelectionMatches, openSearchPanel, closeSearchPanel, searchPanelOpen } from '@codemirror/search';
export { linter, lintGutter, lintKeymap, setDiagnostics, forceLinting, diagnosticCount, forEachDiagnostic } from '@codemirror/lint';
export { closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
export { json } from '@codemirror/lang-json';
export { toml } from '@codemirror/legacy-modes/mode/toml';
export { properties } from '@codemirror/legacy-modes/mode/properties';
export { yaml } from '@codemirror/legacy-modes/mode/yaml';
export { MergeView, unifiedMergeView, goToNextChunk, goToPreviousChunk } from '@codemirror/merge';
