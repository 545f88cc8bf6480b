// checkAsync runs the browser-side check of a file (validate.js) off the main
// thread, in check-worker.js, so that checking an 18,000-line file (the YAML
// parser takes a good part of a second for one) never holds up typing. Small
// texts are checked in place (faster than a round trip); without workers
// everything is.
import { check } from './validate.js';

const IN_PLACE = 8 * 1024; // bytes of text checked without the worker
let worker = null; // null: not started; false: unavailable
let seq = 0;
const sent = new Map(); // id → {resolve, inPlace}: checks the worker has
const owners = new Map(); // owner → {busy, next}: see checkAsync

function start() {
  if (worker !== null) return worker;
  try {
    worker = new Worker(new URL('./check-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      const w = sent.get(e.data.id);
      if (!w) return;
      sent.delete(e.data.id);
      w.resolve(e.data.errors);
    };
    worker.onerror = () => {
      worker = false;
      for (const w of sent.values()) w.inPlace();
      sent.clear();
    };
  } catch (_) {
    worker = false;
  }
  return worker;
}

function post(file, text) {
  if (!start()) return Promise.resolve(check(file, text));
  return new Promise((resolve) => {
    const id = ++seq;
    sent.set(id, { resolve, inPlace: () => resolve(check(file, text)) });
    worker.postMessage({ id, file, text });
  });
}

// checkAsync resolves to check(file, text): [] or [{line, column, message}].
//
// owner (optional, e.g. an editor) makes checks of the same owner queue
// behind each other, only the newest one waiting: while one check of owner
// runs, a newer one replaces the one that waits, which then resolves to null
// (its text is out of date). So an editor's lint, asked after every pause in
// typing, keeps at most one check running and one waiting, whatever a check
// takes.
export function checkAsync(file, text, owner) {
  if (text.length <= IN_PLACE) return Promise.resolve(check(file, text));
  if (!owner) return post(file, text);
  let o = owners.get(owner);
  if (!o) owners.set(owner, (o = { busy: false, next: null }));
  return new Promise((resolve) => {
    if (o.next) o.next.resolve(null);
    o.next = { file, text, resolve };
    if (!o.busy) run(owner, o);
  });
}

async function run(owner, o) {
  o.busy = true;
  while (o.next) {
    const { file, text, resolve } = o.next;
    o.next = null;
    resolve(await post(file, text));
  }
  o.busy = false;
  owners.delete(owner);
}
