// The worker of checker.js: checks one file per message and answers its
// errors ({id, errors}).
import { check } from './validate.js';

self.onmessage = (e) => {
  const { id, file, text } = e.data;
  let errors;
  try {
    errors = check(file, text);
  } catch (err) {
    errors = [{ line: 0, column: 0, message: 'the browser-side check failed: ' + (err && err.message) }];
  }
  self.postMessage({ id, errors });
};
