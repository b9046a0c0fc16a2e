// Form fields, and GraphQL errors shown where they belong: an error whose
// `extensions.argument` names a field of a form (`input.params.fast`, `params.length`, `grid`)
// is shown beside that field, the rest in the form's own error box. Each shows the API's
// message and its `extensions.code`.
//
// A field says which arguments it stands for with `data-arg` (space-separated). An argument
// goes to the field with the longest name it equals or starts with: `input.sizing.fraction`
// goes to `input.sizing`. Messages are set as text, never as HTML.

import { ApiError } from './api.js';
import { el } from './dom.js';

export function clearErrors(form) {
  for (const shown of form.querySelectorAll('.error')) {
    shown.replaceChildren();
    shown.hidden = true;
  }
  for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
}

/** Show `failure` (an ApiError, or any Error) in `form`. */
export function showErrors(form, failure) {
  clearErrors(form);
  const errors = failure instanceof ApiError
    ? failure.errors
    : [{ message: failure?.message ?? String(failure), extensions: {} }];
  for (const error of errors) {
    const field = fieldFor(form, error.extensions?.argument);
    const box = field?.querySelector('.error') ?? form.querySelector('.error.form-error');
    field?.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
    box.append(describe(error));
    box.hidden = false;
  }
}

function fieldFor(form, argument) {
  if (!argument) return null;
  let best = null;
  let bestLength = -1;
  for (const field of form.querySelectorAll('[data-arg]')) {
    for (const name of field.dataset.arg.split(' ')) {
      const fits = argument === name || argument.startsWith(`${name}.`);
      if (fits && name.length > bestLength) {
        best = field;
        bestLength = name.length;
      }
    }
  }
  return best;
}

function describe(error) {
  const { code, argument } = error.extensions ?? {};
  return el('div', { className: 'api-error', dataset: argument ? { argument } : {} },
    code ? el('code', {}, code) : null, code ? ' ' : null, error.message);
}

/** A labelled form field holding `control`, with a place for its errors; `arg` names the
 * API arguments it stands for. */
export function field(label, control, { arg = null, hint = '' } = {}) {
  return el('div', { className: 'field', dataset: arg ? { arg } : {} },
    el('label', {}, label, control),
    hint ? el('small', { className: 'hint' }, hint) : null,
    el('div', { className: 'error', hidden: true, role: 'alert' }));
}

/** The box for the errors that name no field of its form. */
export function formErrorBox() {
  return el('div', { className: 'error form-error', hidden: true, role: 'alert' });
}
