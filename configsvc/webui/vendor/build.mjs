// build.mjs OUT: bundles codemirror.mjs into OUT/static/vendor/codemirror.js
// and parsers.mjs into OUT/static/vendor/parsers.js, with the licences of
// every package inside them (THIRD-PARTY-LICENSES.txt), and
// copies axe-core into OUT/testdata/axe. Run through build.sh, which installs
// the exact versions of package-lock.json first. The output depends only on
// the lock file and these sources: no time stamps, absolute paths or
// file-system order reach it, so a rebuild reproduces it byte for byte.
import { build } from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) throw new Error('usage: node build.mjs OUT');
const staticDir = join(out, 'static', 'vendor');
const axeDir = join(out, 'testdata', 'axe');
mkdirSync(staticDir, { recursive: true });
mkdirSync(axeDir, { recursive: true });

// The one change to a package's code: style-mod (CodeMirror's styles) puts
// its rules in a <style> element when mounted on a document, which the
// console's Content-Security-Policy (style-src 'self', no 'unsafe-inline')
// refuses; on shadow roots it uses a constructed style sheet, which the policy
// allows. The patch makes it take that path for the document too (every
// browser the console supports has document.adoptedStyleSheets). The build
// fails if the line it patches is not there, so an upgrade cannot drop it.
const STYLE_MOD_FROM = 'if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {';
const STYLE_MOD_TO = 'if (root.adoptedStyleSheets && win.CSSStyleSheet) {';
const adoptSheets = {
  name: 'style-mod-adopted-sheets',
  setup(b) {
    b.onLoad({ filter: /node_modules[\\/]style-mod[\\/]src[\\/]style-mod\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes(STYLE_MOD_FROM)) throw new Error('style-mod changed: the adopted-sheets patch no longer applies');
      return { contents: src.replace(STYLE_MOD_FROM, STYLE_MOD_TO), loader: 'js' };
    });
  },
};

const bundle = (entry) => build({
  plugins: [adoptSheets],
  absWorkingDir: here,
  entryPoints: [entry + '.mjs'],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  charset: 'utf8',
  metafile: true,
  write: false,
  outfile: entry + '.js',
});

// The packages whose code is in the bundles, from esbuild's list of inputs.
const pkgs = new Set();
const sizes = [];
for (const entry of ['codemirror', 'parsers']) {
  const result = await bundle(entry);
  writeFileSync(join(staticDir, entry + '.js'), result.outputFiles[0].contents);
  sizes.push(entry + '.js ' + result.outputFiles[0].contents.length + ' bytes');
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) pkgs.add(m[1]);
  }
}
const licenceText = (dir) => {
  const f = readdirSync(dir).filter((n) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(n)).sort()[0];
  if (!f) throw new Error(dir + ': no licence file');
  return readFileSync(join(dir, f), 'utf8').trim();
};
const parts = ['The console\'s vendored bundles (codemirror.js, parsers.js) hold code of these packages from npm,',
  'built by configsvc/webui/vendor/build.sh from its package-lock.json. Their licences follow.',
  'One change: style-mod mounts its styles as a constructed style sheet on the document too (see build.mjs).', ''];
for (const name of [...pkgs].sort()) {
  const dir = join(here, 'node_modules', name);
  const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  parts.push('='.repeat(78), `${name} ${meta.version} (${meta.license})`, '='.repeat(78), licenceText(dir), '');
}
writeFileSync(join(staticDir, 'THIRD-PARTY-LICENSES.txt'), parts.join('\n'));

// axe-core ships a built file; the browser tests inject it (it is not served).
const axe = join(here, 'node_modules', 'axe-core');
copyFileSync(join(axe, 'axe.min.js'), join(axeDir, 'axe.min.js'));
const axeMeta = JSON.parse(readFileSync(join(axe, 'package.json'), 'utf8'));
writeFileSync(join(axeDir, 'LICENSE.txt'), `axe-core ${axeMeta.version} (${axeMeta.license})\n\n${licenceText(axe)}\n`);
console.log('vendor: %d packages; %s; axe-core %s', pkgs.size, sizes.join(', '), axeMeta.version);
