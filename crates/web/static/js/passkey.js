// Chartroom: passkeys (WebAuthn) on the sign-in, second-factor, enrollment and account pages.
//
// Each <form data-passkey="create|get" data-begin="…" data-finish="…"> runs one ceremony:
// POST data-begin → {challenge_id, options}; the options go through the browser's own
// PublicKeyCredential.parse…OptionsFromJSON; the credential goes back as credential.toJSON()
// to data-finish with the challenge id (and the form's "name", when it has one). Both posts
// are same-origin fetches carrying the session cookie, so the browser sends
// Sec-Fetch-Site: same-origin, which the server requires of every state change. The answer
// says where to go next (data-next overrides it); recovery codes, when the answer has them,
// are written as text into the list named by data-codes, whose section is then shown.
// Messages are text only (no HTML sink: Trusted Types stay strict). The forms stay hidden
// where the browser lacks these APIs.

const PKC = window.PublicKeyCredential;
const supported = Boolean(
  PKC && PKC.parseCreationOptionsFromJSON && PKC.parseRequestOptionsFromJSON &&
  navigator.credentials,
);

// The server's options may carry nulls for absent members; the parsers want them absent.
function withoutNulls(value) {
  if (Array.isArray(value)) {
    return value.map(withoutNulls);
  }
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== null && v !== undefined) {
        out[k] = withoutNulls(v);
      }
    }
    return out;
  }
  return value;
}

// POSTs `body` as JSON; the parsed answer, or null when the server sent the page elsewhere
// (no session any more: the sign-in page). A refusal throws the server's message.
async function post(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body || {}),
  });
  if (res.redirected) {
    window.location.assign(res.url);
    return null;
  }
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    const id = res.headers.get('x-request-id');
    const message = data && data.error && data.error.message
      ? data.error.message
      : 'That did not work';
    throw new Error(message + (id ? ' (request id ' + id + ')' : '') + '.');
  }
  return data;
}

function say(form, text) {
  const out = form.querySelector('[data-passkey-error]');
  if (out) {
    out.textContent = text;
    out.hidden = !text;
  }
}

function showCodes(form, codes) {
  const list = document.getElementById(form.dataset.codes);
  if (!list) {
    return false;
  }
  list.replaceChildren(...codes.map((c) => {
    const li = document.createElement('li');
    const code = document.createElement('code');
    code.textContent = c;
    li.append(code);
    return li;
  }));
  const section = list.closest('section');
  if (section) {
    section.hidden = false;
  }
  for (const other of document.querySelectorAll('[data-hide-with-codes]')) {
    other.hidden = true;
  }
  const heading = section && section.querySelector('h2');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
  return true;
}

async function ceremony(form) {
  const start = await post(form.dataset.begin);
  if (!start) {
    return;
  }
  const publicKey = withoutNulls(start.options && start.options.publicKey);
  const credential = form.dataset.passkey === 'create'
    ? await navigator.credentials.create({ publicKey: PKC.parseCreationOptionsFromJSON(publicKey) })
    : await navigator.credentials.get({ publicKey: PKC.parseRequestOptionsFromJSON(publicKey) });
  const body = { challenge_id: start.challenge_id, credential: credential.toJSON() };
  const name = form.elements.namedItem('name');
  if (name) {
    body.name = name.value;
  }
  const done = await post(form.dataset.finish, body);
  if (!done) {
    return;
  }
  if (done.recovery_codes && form.dataset.codes && showCodes(form, done.recovery_codes)) {
    return;
  }
  window.location.assign(form.dataset.next || done.next);
}

function cancelled(e) {
  return e && (e.name === 'NotAllowedError' || e.name === 'AbortError');
}

if (supported) {
  for (const form of document.querySelectorAll('form[data-passkey]')) {
    form.hidden = false;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!form.reportValidity()) {
        return;
      }
      const button = form.querySelector('button[type=submit]');
      if (button) {
        button.disabled = true;
      }
      say(form, '');
      try {
        await ceremony(form);
      } catch (err) {
        say(form, cancelled(err)
          ? 'The passkey was not used (cancelled or timed out). Try again.'
          : String(err && err.message ? err.message : err));
      } finally {
        if (button) {
          button.disabled = false;
        }
      }
    });
  }
}
