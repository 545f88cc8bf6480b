// The entry of static/vendor/parsers.js: the YAML and TOML parsers of the
// console's browser-side checks (js/validate.js), apart from the editor so
// that the checking worker (js/check-worker.js) loads only them.
export { parseAllDocuments as parseYAMLDocuments } from 'yaml';
export { parse as parseTOML } from 'smol-toml';
