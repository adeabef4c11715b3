// Chartroom's page behaviour (an ES module; no inline script anywhere).
// - Regions that htmx is updating are marked aria-busy for assistive technology.
// - When an htmx request fails, the status line says so (text only, never HTML).

const status = document.getElementById('status');

function say(text) {
  if (status) {
    status.textContent = text;
  }
}

document.addEventListener('htmx:beforeRequest', (e) => {
  const target = e.detail && e.detail.target;
  if (target) {
    target.setAttribute('aria-busy', 'true');
  }
  say('');
});

document.addEventListener('htmx:afterRequest', (e) => {
  const target = e.detail && e.detail.target;
  if (target) {
    target.removeAttribute('aria-busy');
  }
});

document.addEventListener('htmx:responseError', (e) => {
  const xhr = e.detail && e.detail.xhr;
  const id = xhr ? xhr.getResponseHeader('x-request-id') : null;
  say('That did not work' + (id ? ' (request id ' + id + ')' : '') + '. Try again or reload the page.');
});

document.addEventListener('htmx:sendError', () => {
  say('Chartroom could not be reached. Check your connection and try again.');
});

// Versioned forms (data-if-match="<id of the version field>"): an htmx request names the
// version it was made against in If-Match, as the API expects; a refused save (412, stale;
// 400, refused input) still shows the server's answer in place.
document.addEventListener('htmx:configRequest', (e) => {
  const elt = e.detail && e.detail.elt;
  const field = elt && elt.getAttribute ? elt.getAttribute('data-if-match') : null;
  if (field) {
    const input = document.getElementById(field);
    if (input && /^[0-9]+$/.test(input.value)) {
      e.detail.headers['If-Match'] = '"' + input.value + '"';
    }
  }
});

document.addEventListener('htmx:beforeSwap', (e) => {
  const elt = e.detail && e.detail.elt;
  const xhr = e.detail && e.detail.xhr;
  if (elt && elt.getAttribute && elt.getAttribute('data-if-match') && xhr
      && (xhr.status === 412 || xhr.status === 400)) {
    e.detail.shouldSwap = true;
    e.detail.isError = false;
  }
});

// The idle timeout (body data-idle-seconds: what the server's session check enforces here).
// Two minutes before it runs out (half the timeout when that is shorter) a notice offers to
// stay signed in; when it has run out the page signs out, so no patient data stays on an
// unattended screen. Every successful request counts as activity, as it does on the server.
// The server records activity at most every few seconds, so the page counts from a little
// earlier than its last request (MARGIN_MS) and never outlasts the server's session. Tabs of
// the same browser tell each other of activity (a timestamp, nothing else), so a tab left in
// the background does not sign out a user who is working in another one.
const MARGIN_MS = 10000;
const idleWarning = document.getElementById('idle-warning');
const activity = 'BroadcastChannel' in window ? new BroadcastChannel('chartroom-activity') : null;
let lastActivity = Date.now();

function active(at) {
  if (at > lastActivity) {
    lastActivity = at;
  }
  idleTick();
}

if (activity) {
  activity.onmessage = (e) => {
    if (typeof e.data === 'number' && e.data <= Date.now()) {
      active(e.data);
    }
  };
  activity.postMessage(lastActivity);
}

function idleLeftMs() {
  const idle = Number(document.body.dataset.idleSeconds);
  if (!Number.isFinite(idle) || idle <= 0) {
    return null;
  }
  return { left: idle * 1000 - MARGIN_MS - (Date.now() - lastActivity), idle: idle * 1000 };
}

function idleTick() {
  const t = idleLeftMs();
  if (!t || !idleWarning) {
    return;
  }
  if (t.left <= 0) {
    clearInterval(idleTimer);
    const form = document.getElementById('sign-out');
    const reason = document.getElementById('sign-out-reason');
    if (form && reason) {
      reason.value = 'idle';
      form.requestSubmit();
    }
    return;
  }
  const warnAt = Math.min(120000, t.idle / 2);
  if (t.left <= warnAt) {
    if (idleWarning.hidden) {
      idleWarning.hidden = false;
    }
  } else if (!idleWarning.hidden) {
    idleWarning.hidden = true;
  }
}

const idleTimer = setInterval(idleTick, 1000);

document.addEventListener('htmx:afterRequest', (e) => {
  if (e.detail && e.detail.successful) {
    const now = Date.now();
    active(now);
    if (activity) {
      activity.postMessage(now);
    }
  }
});
