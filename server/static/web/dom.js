// Building DOM nodes without HTML strings: text from the API is always set as text.

/** `el('td', {className: 'num', dataset: {value: '1.5'}, onclick}, 'text', child)`: an element
 * with its properties (or attributes) set, listeners added and children appended. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** A select whose options are `[value, label]` pairs (or plain values). */
export function select(options, props = {}) {
  return el('select', props, options.map((option) => {
    const [value, label] = Array.isArray(option) ? option : [option, option];
    return el('option', { value }, label);
  }));
}
