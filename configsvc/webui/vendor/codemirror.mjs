// The entry of static/vendor/codemirror.js: everything the console takes from
// npm, re-exported from one ES module so that the console's own modules import
// a single committed file. build.sh bundles it with esbuild; edit this list,
// run build.sh, and commit the rebuilt bundle with the lock file.
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
export { yaml } from '@codemirror/lang-yaml';
export { toml } from '@codemirror/legacy-modes/mode/toml';
export { properties } from '@codemirror/legacy-modes/mode/properties';
export { MergeView, unifiedMergeView, goToNextChunk, goToPreviousChunk } from '@codemirror/merge';
export { parseAllDocuments as parseYAMLDocuments, LineCounter as YAMLLineCounter } from 'yaml';
export { parse as parseTOML } from 'smol-toml';
