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
