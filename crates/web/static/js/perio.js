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

// The dictation control (needs static/js/audio.js): press Dictate, say one final, press again
// (or wait 15 s); the clip goes to the page's voice route and the exam region comes back with
// the read-back ("Heard: …"), and for an unsure hearing the "Chart …? / Discard" question.
const voice = document.getElementById('voice');
const audio = window.chartroomAudio;
if (voice && audio && navigator.mediaDevices) {
  const btn = document.getElementById('voice-toggle');
  const status = document.getElementById('voice-status');
  const say = (t) => { status.textContent = t; };
  const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : ''; };
  const field = (n) => { const e = document.querySelector('#perio-exam input[name="' + n + '"]'); return e ? e.value : ''; };
  const MAX = audio.RATE * 15;
  let mic = null;
  let parts = [];
  let len = 0;
  const state = (s) => { voice.dataset.state = s; };
  voice.hidden = false;
  state('idle');

  const readBack = () => {
    const heard = text('voice-heard');
    const msg = text('perio-message');
    if (document.getElementById('voice-chart')) {
      say('Heard: ' + heard + '. Not charted yet: chart “' + text('voice-final') + '” or discard it.');
      document.getElementById('voice-chart').focus();
    } else {
      say((heard ? 'Heard: ' + heard + '. ' : '') + msg);
    }
  };

  const stop = async () => {
    if (!mic) return;
    mic.stop();
    mic = null;
    btn.setAttribute('aria-pressed', 'false');
    btn.textContent = 'Dictate';
    btn.disabled = true;
    state('sending');
    say('Recognizing…');
    const all = new Int16Array(Math.min(len, MAX));
    let at = 0;
    for (const p of parts) { const k = Math.min(p.length, all.length - at); all.set(p.subarray(0, k), at); at += k; }
    const q = new URLSearchParams({ version: field('version'), previous: field('previous') });
    try {
      const res = await fetch(voice.dataset.url + '?' + q, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'content-type': 'audio/wav', 'hx-request': 'true' }, body: audio.wav(all),
      });
      const html = await res.text();
      if (html.includes('id="perio-exam"') && window.htmx) {
        window.htmx.swap('#perio-exam', html, { swapStyle: 'outerHTML' });
        readBack();
      } else {
        say('Dictation failed (HTTP ' + res.status + '): nothing charted.');
      }
    } catch (_) {
      say('Connection lost: nothing charted. Dictate again.');
    } finally {
      btn.disabled = false;
      state('idle');
    }
  };

  btn.addEventListener('click', async () => {
    if (mic) { stop(); return; }
    parts = [];
    len = 0;
    voice.dataset.recordedMs = '0';
    try {
      mic = await audio.microphone((s) => {
        if (!mic) return;
        parts.push(s);
        len += s.length;
        voice.dataset.recordedMs = String(Math.round(len * 1000 / audio.RATE));
        if (len >= MAX) stop();
      });
    } catch (_) {
      say('The microphone could not be opened. Check the browser\'s permission.');
      return;
    }
    btn.setAttribute('aria-pressed', 'true');
    btn.textContent = 'Stop and chart';
    state('listening');
    say('Listening: say one final, then press Stop and chart.');
  });

  document.addEventListener('click', (e) => {
    if (e.target instanceof Element && e.target.closest('[data-voice-discard]')) {
      const r = document.getElementById('voice-readback');
      if (r) r.remove();
      say('Discarded: nothing charted.');
      btn.focus();
    }
  });
}
