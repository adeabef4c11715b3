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
