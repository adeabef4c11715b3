// Chartroom's visit recorder (an ES module on the visit page; no inline script, text only).
// - Start asks the server for a capture (it refuses without the visit's recording consent and
//   says so), then captures the microphone, downsamples it to 16 kHz mono 16-bit PCM and cuts
//   a WAV chunk every ~5 s.
// - Chunks are uploaded in order (PUT …/captures/{id}/chunks/{seq}); unsent chunks stay in
//   memory across a network drop and are retried with back-off; a resend of an accepted chunk
//   is harmless (the server answers 200). After a reload or a browser crash the page resumes
//   at the server's next seq: at most the chunk being cut is lost.
// - Pause, Resume and Stop send what is cut first, then change the server's state; every
//   change is announced to the live indicator of every open page (BroadcastChannel).

const root = document.getElementById('recorder');
const CHUNK_SECONDS = 5;
const audioLib = window.chartroomAudio; // static/js/audio.js
const RATE = audioLib.RATE;
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('chartroom-capture') : null;

function $(id) { return document.getElementById(id); }

function clock(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n) => String(n).padStart(2, '0');
  return (h > 0 ? h + ':' + two(m) : two(m)) + ':' + two(s % 60);
}

if (root) {
  const api = root.dataset.api;
  const visit = root.dataset.visit;
  const message = $('rec-message');
  const time = $('rec-time');
  const buttons = {
    start: $('rec-start'), pause: $('rec-pause'), resume: $('rec-resume'), stop: $('rec-stop'),
  };
  let capture = root.dataset.capture || null;
  let state = root.dataset.state || 'none';
  let nextSeq = Number(root.dataset.nextSeq || 0);
  let baseMs = Number(root.dataset.elapsedMs || 0);
  let baseAt = performance.now();
  let audio = null; // the open microphone ({ stop })
  let pending = []; // Int16 samples of the chunk being cut
  let pendingLen = 0;
  const queue = []; // { seq, blob } not yet accepted
  let sending = false;
  let uploaded = 0;

  const say = (t) => { if (message) message.textContent = t; };
  const announce = () => {
    if (channel) channel.postMessage({ capture, state });
    document.dispatchEvent(new CustomEvent('chartroom:capture'));
  };

  function show() {
    const open = state === 'live' || state === 'paused';
    buttons.start.hidden = open && audio !== null;
    buttons.start.textContent = open ? 'Continue recording' : 'Start recording';
    buttons.pause.hidden = !(state === 'live' && audio);
    buttons.resume.hidden = state !== 'paused';
    buttons.stop.hidden = !open;
    root.dataset.state = state;
    root.dataset.uploaded = String(uploaded);
    root.dataset.queued = String(queue.length);
    const ms = state === 'live' ? baseMs + (performance.now() - baseAt) : baseMs;
    if (time) time.textContent = clock(ms);
  }
  setInterval(show, 250);

  function adopt(c) {
    capture = c.capture_id;
    state = c.state;
    baseMs = c.elapsed_ms;
    baseAt = performance.now();
    nextSeq = Math.max(nextSeq, c.chunks);
    show();
  }

  async function call(method, path, body) {
    const res = await fetch(api + path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: body ? { 'content-type': body.type || 'application/json' } : {},
      body: body || undefined,
    });
    let json = null;
    try { json = await res.json(); } catch (_) { json = null; }
    return { res, json };
  }

  function errorText(json, fallback) {
    return (json && json.error && json.error.message) || fallback;
  }

  function cut() {
    if (pendingLen === 0) return;
    const all = new Int16Array(pendingLen);
    let at = 0;
    for (const p of pending) { all.set(p, at); at += p.length; }
    pending = [];
    pendingLen = 0;
    queue.push({ seq: nextSeq, blob: audioLib.wav(all) });
    nextSeq += 1;
    send();
  }

  async function send() {
    if (sending) return;
    sending = true;
    let wait = 500;
    try {
      while (queue.length > 0 && capture) {
        const item = queue[0];
        let r;
        try {
          r = await call('PUT', '/captures/' + capture + '/chunks/' + item.seq, item.blob);
        } catch (_) {
          say('Connection lost: ' + queue.length + ' chunk(s) kept, retrying.');
          await new Promise((ok) => setTimeout(ok, wait));
          wait = Math.min(wait * 2, 5000);
          continue;
        }
        wait = 500;
        if (r.res.status === 200 || r.res.status === 201) {
          queue.shift();
          uploaded += 1;
          adopt(r.json.capture);
          if (r.json.capture.state === 'stopped') {
            halt();
            say('Recording stopped: ' + (r.json.capture.stop_reason || 'stopped') + '.');
            announce();
          } else {
            say('');
          }
        } else if (r.res.status === 409) {
          // Not live any more, or out of step: take the server's state.
          const g = await call('GET', '/captures/' + capture);
          if (g.res.ok) {
            adopt(g.json);
            while (queue.length > 0 && queue[0].seq < g.json.chunks) queue.shift();
            if (g.json.state !== 'live') {
              halt();
              queue.length = 0;
              say(errorText(r.json, 'The server refused the audio.'));
              announce();
              break;
            }
            if (queue.length > 0 && queue[0].seq > g.json.chunks) {
              // A gap (a chunk lost in a crash): renumber what is kept.
              let seq = g.json.chunks;
              for (const q of queue) { q.seq = seq; seq += 1; }
              nextSeq = seq;
            }
          } else {
            break;
          }
        } else if (r.res.status >= 500 || r.res.status === 429) {
          await new Promise((ok) => setTimeout(ok, wait));
          wait = Math.min(wait * 2, 5000);
        } else {
          say(errorText(r.json, 'The server refused the audio.'));
          queue.shift();
        }
      }
    } finally {
      sending = false;
      show();
    }
  }

  async function drain(limitMs) {
    const until = performance.now() + limitMs;
    while ((queue.length > 0 || sending) && performance.now() < until) {
      send();
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }

  async function microphone() {
    audio = await audioLib.microphone((samples) => {
      if (state !== 'live') return;
      pending.push(samples);
      pendingLen += samples.length;
      if (pendingLen >= RATE * CHUNK_SECONDS) cut();
    });
  }

  function halt() {
    if (!audio) return;
    audio.stop();
    audio = null;
  }

  buttons.start.addEventListener('click', async () => {
    buttons.start.disabled = true;
    try {
      if (!(state === 'live' || state === 'paused')) {
        const r = await call('POST', '/visits/' + visit + '/captures');
        if (r.res.status !== 201) {
          say(errorText(r.json, 'The recording could not start.'));
          return;
        }
        nextSeq = 0;
        adopt(r.json);
      }
      await microphone();
      if (state === 'paused') {
        const r = await call('POST', '/captures/' + capture + '/resume');
        if (r.res.ok) adopt(r.json);
      }
      say('Recording.');
      announce();
    } catch (_) {
      say('The microphone could not be opened. Check the browser\'s permission.');
    } finally {
      buttons.start.disabled = false;
      show();
    }
  });

  buttons.pause.addEventListener('click', async () => {
    cut();
    await drain(10000);
    const r = await call('POST', '/captures/' + capture + '/pause');
    if (r.res.ok) { adopt(r.json); say('Paused.'); } else { say(errorText(r.json, 'Could not pause.')); }
    announce();
  });

  buttons.resume.addEventListener('click', async () => {
    if (!audio) {
      try { await microphone(); } catch (_) { say('The microphone could not be opened.'); return; }
    }
    const r = await call('POST', '/captures/' + capture + '/resume');
    if (r.res.ok) { adopt(r.json); say('Recording.'); } else { say(errorText(r.json, 'Could not resume.')); }
    announce();
  });

  buttons.stop.addEventListener('click', async () => {
    buttons.stop.disabled = true;
    cut();
    await drain(10000);
    const r = await call('POST', '/captures/' + capture + '/stop');
    if (r.res.ok) root.dataset.stoppedAt = String(Date.now());
    halt();
    if (r.res.ok) { adopt(r.json); say('Recording stopped.'); } else { say(errorText(r.json, 'Could not stop.')); }
    buttons.stop.disabled = false;
    announce();
    show();
  });

  show();
}
