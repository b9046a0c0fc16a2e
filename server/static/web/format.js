// How numbers and times are written on the page. Raw values stay in `data-value` attributes.

const ratio = new Intl.NumberFormat('en', { style: 'percent', maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat('en', { maximumFractionDigits: 4 });

/** '2023-11-14 22:14:00' (UTC) from an ISO string or epoch milliseconds. */
export function utc(time) {
  return new Date(time).toISOString().replace('T', ' ').slice(0, 19);
}

/** An ISO time for a datetime-local input (read as UTC), and back. */
export function toLocalInput(iso) {
  return new Date(iso).toISOString().slice(0, 16);
}
export function fromLocalInput(value) {
  return value ? `${value}:00Z` : null;
}

export function percent(value) {
  return value === null || value === undefined ? '–' : ratio.format(value);
}

export function number(value) {
  return value === null || value === undefined ? '–' : plain.format(value);
}

/** Seconds as '3d 4h', '2h 5m' or '40s'. */
export function duration(seconds) {
  const units = [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]];
  const parts = [];
  let left = Math.round(seconds);
  for (const [unit, size] of units) {
    if (left >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return parts.slice(0, 2).join(' ');
}
