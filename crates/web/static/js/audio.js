// Chartroom: microphone capture shared by the visit recorder and the perio dictation control
// (a classic script loaded before them; it defines functions only and writes no HTML).
// - microphone(onSamples) opens the microphone and hands 16 kHz mono 16-bit PCM samples
//   (Int16Array) to onSamples as they come; stop() closes it (tracks and audio context).
// - wav(samples) makes a WAV Blob of 16 kHz mono 16-bit PCM.
'use strict';
window.chartroomAudio = (function () {
  var RATE = 16000;

  function wav(samples) {
    var buf = new ArrayBuffer(44 + samples.length * 2);
    var v = new DataView(buf);
    var text = function (at, s) { for (var i = 0; i < s.length; i++) v.setUint8(at + i, s.charCodeAt(i)); };
    text(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); text(8, 'WAVE');
    text(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, RATE, true); v.setUint32(28, RATE * 2, true); v.setUint16(32, 2, true);
    v.setUint16(34, 16, true); text(36, 'data'); v.setUint32(40, samples.length * 2, true);
    for (var i = 0; i < samples.length; i++) v.setInt16(44 + i * 2, samples[i], true);
    return new Blob([buf], { type: 'audio/wav' });
  }

  async function microphone(onSamples) {
    var stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    var ctx = new AudioContext();
    var source = ctx.createMediaStreamSource(stream);
    var node = ctx.createScriptProcessor(4096, 1, 1);
    var mute = ctx.createGain();
    mute.gain.value = 0;
    var ratio = ctx.sampleRate / RATE;
    var carry = 0;
    node.onaudioprocess = function (e) {
      var input = e.inputBuffer.getChannelData(0);
      var out = new Int16Array(Math.floor((input.length - carry) / ratio) + 1);
      var n = 0;
      var pos = carry;
      while (pos < input.length) {
        // Average the input samples that fall in this output sample (a simple low-pass).
        var from = Math.floor(pos);
        var to = Math.min(input.length, Math.floor(pos + ratio));
        var sum = 0;
        for (var i = from; i < Math.max(to, from + 1); i++) sum += input[i];
        var s = Math.max(-1, Math.min(1, sum / Math.max(1, to - from)));
        out[n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        pos += ratio;
      }
      carry = pos - input.length;
      onSamples(out.subarray(0, n));
    };
    source.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    return {
      stop: function () {
        node.onaudioprocess = null;
        stream.getTracks().forEach(function (t) { t.stop(); });
        ctx.close();
      },
    };
  }

  return Object.freeze({ RATE: RATE, wav: wav, microphone: microphone });
})();
