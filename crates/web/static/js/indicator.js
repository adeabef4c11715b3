// Chartroom's live recording indicator (an ES module, on every signed-in page).
// The server renders the indicator's first state (#rec-indicator: hidden, or the capture's
// state and elapsed time; on pages outside a practice, `data-probe` asks the server as the
// page loads); this module keeps it current:
// - the elapsed time ticks locally while live;
// - while a capture is open, the server's state is polled every 500 ms (the clinician's own
//   open capture in this practice, `data-src`), so a stop anywhere hides it within a second;
// - a start, pause or stop on the visit page (any tab of this browser) is announced on a
//   BroadcastChannel, and every open page polls at once.
// Text only (textContent): no HTML sink.

const el = document.getElementById('rec-indicator');
const POLL_MS = 500;
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('chartroom-capture') : null;

function clock(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n) => String(n).padStart(2, '0');
  return (h > 0 ? h + ':' + two(m) : two(m)) + ':' + two(s % 60);
}

let state = null;
let baseMs = 0;
let baseAt = 0;
let timer = null;
let polling = false;

function render() {
  if (!el) return;
  if (!state) {
    if (el.dataset.state === 'live' || el.dataset.state === 'paused') {
      // When it went away (wall clock, ms), for the end-to-end test of SCR-02.
      el.dataset.goneAt = String(Date.now());
    }
    el.dataset.state = 'none';
    if (el.dataset.keep) {
      // The status screen: always shown, saying so.
      el.querySelector('.rec-label').textContent = 'Not recording';
      el.querySelector('.rec-elapsed').textContent = '';
    } else {
      el.hidden = true;
    }
    return;
  }
  const live = state === 'live';
  const elapsed = live ? baseMs + (performance.now() - baseAt) : baseMs;
  el.hidden = false;
  el.dataset.state = state;
  el.querySelector('.rec-label').textContent = live ? 'Recording' : 'Paused';
  el.querySelector('.rec-elapsed').textContent = clock(elapsed);
}

function apply(capture) {
  if (capture && (capture.state === 'live' || capture.state === 'paused')) {
    state = capture.state;
    baseMs = capture.elapsed_ms;
    baseAt = performance.now();
  } else {
    state = null;
  }
  render();
  schedule();
}

async function poll() {
  if (!el || !el.dataset.src || polling) return;
  polling = true;
  try {
    const res = await fetch(el.dataset.src, { credentials: 'same-origin', cache: 'no-store' });
    if (res.ok) {
      const body = await res.json();
      apply(body.capture);
    } else if (res.status === 401 || res.status === 403 || res.status === 404) {
      apply(null);
    }
  } catch (_) {
    // Offline: keep showing what we know; the next poll corrects it.
  } finally {
    polling = false;
  }
}

function schedule() {
  if (timer) {
    clearInterval(timer);
    timer = null;
  }
  if (state) {
    timer = setInterval(() => { render(); poll(); }, POLL_MS);
  }
}

if (el) {
  if (el.dataset.state === 'live' || el.dataset.state === 'paused') {
    apply({ state: el.dataset.state, elapsed_ms: Number(el.dataset.elapsedMs || 0) });
  }
  if (channel) {
    channel.addEventListener('message', () => { poll(); });
  }
  document.addEventListener('chartroom:capture', () => { poll(); });
  // A page outside a practice: its first paint could not read the state; ask now.
  if (el.dataset.probe) poll();
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') poll();
  });
}


