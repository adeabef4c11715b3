// Chartroom's perio exam page (an ES module; the page works without it: the dictation box
// is a plain form).
// - Arrow keys move between the grid's cells; Enter on a cell puts "select tooth N <surface>
//   <part>" in the dictation box; digits typed in the grid go to the dictation box.
// - A refused final (400, 409) still shows the server's answer in place.
// - After a final is sent, the box is emptied for the next one; the print button prints.

const box = document.getElementById('final');
const PARTS = { M: 'mesial', B: 'mid', D: 'distal', L: 'mid' };

function cellsOf(row) {
  return Array.from(row.querySelectorAll('td[data-row]'));
}

function move(cell, key) {
  const row = cell.parentElement;
  const cells = cellsOf(row);
  const i = cells.indexOf(cell);
  if (key === 'ArrowLeft' || key === 'ArrowRight') {
    return cells[i + (key === 'ArrowLeft' ? -1 : 1)];
  }
  let next = key === 'ArrowUp' ? row.previousElementSibling : row.nextElementSibling;
  while (next && cellsOf(next).length !== cells.length) {
    next = key === 'ArrowUp' ? next.previousElementSibling : next.nextElementSibling;
  }
  return next ? cellsOf(next)[i] : null;
}

function type(text, replace) {
  if (!box) return;
  box.value = replace ? text : (box.value + text);
  box.focus();
}

document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (!(t instanceof Element) || e.altKey || e.ctrlKey || e.metaKey) return;
  const region = t.closest('.perio-grid');
  if (!region) return;
  const cell = t.matches('td[data-row]') ? t
    : region.querySelector('td[aria-current]') || region.querySelector('td[data-row]');
  if (e.key.startsWith('Arrow')) {
    const to = t === cell ? move(cell, e.key) : cell;
    if (to) {
      to.focus();
      e.preventDefault();
    }
  } else if (/^[0-9]$/.test(e.key)) {
    type(e.key + ' ', false);
    e.preventDefault();
  } else if (e.key === 'Enter' && t === cell && cell.dataset.site) {
    const site = cell.dataset.site;
    const surface = site === 'B' || site.endsWith('B') ? 'facial' : 'lingual';
    type('select tooth ' + cell.dataset.tooth + ' ' + surface + ' '
      + PARTS[site.charAt(0)] + ' ', true);
    e.preventDefault();
  }
});

function fromPerioForm(e) {
  const elt = e.detail && e.detail.elt;
  return elt && elt.closest && (elt.id === 'dictation' || elt.closest('#perio-exam'));
}

document.addEventListener('htmx:beforeSwap', (e) => {
  const xhr = e.detail && e.detail.xhr;
  if (fromPerioForm(e) && xhr && (xhr.status === 400 || xhr.status === 409)) {
    e.detail.shouldSwap = true;
    e.detail.isError = false;
  }
});

document.addEventListener('htmx:afterRequest', (e) => {
  const elt = e.detail && e.detail.elt;
  if (box && elt && elt.id === 'dictation' && e.detail.successful) {
    box.value = '';
    box.focus();
  }
});

document.addEventListener('click', (e) => {
  if (e.target instanceof Element && e.target.closest('[data-print]')) {
    window.print();
  }
});

function showPrint() {
  for (const b of document.querySelectorAll('[data-print]')) b.hidden = false;
}
showPrint();
document.addEventListener('htmx:afterSwap', showPrint);
