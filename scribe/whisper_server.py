"""Chartroom's local transcription sidecar: Whisper (faster-whisper, CTranslate2, CPU int8)
behind the OpenAI-compatible transcription endpoint, on loopback or a Unix socket.

Chartroom starts this with the interpreter of the venv scripts/install-scribe made, and speaks
to it through the same adapter it uses for any OpenAI-compatible provider.

Guarantees:
- Nothing is downloaded: the model is loaded from a local directory with HF_HUB_OFFLINE=1.
- It listens only on 127.0.0.1 (port 0: the kernel picks) or on a Unix socket (mode 0600), and
  prints exactly one line `chartroom-whisper ready port=N` (or `unix=PATH`) on stdout once the
  model is loaded and the socket accepts connections.
- It exits when its stdin reaches end of file (the supervisor holds the other end), so it does
  not outlive Chartroom.
- Requests larger than --max-bytes are refused before their body is read (413); one
  transcription runs at a time, a bounded number wait, the rest get 429 with Retry-After.
- Voice-activity detection (Silero VAD, built into faster-whisper) runs before recognition, and
  segments that look invented are dropped (see `keep_segment`): silence yields no segments.
- Logs carry methods, paths, statuses, sizes and timings, never audio, prompts or text.

Endpoints:
  POST /v1/audio/transcriptions  multipart/form-data: file, model, prompt, language,
                                 response_format (json | verbose_json | text), temperature
  GET  /health                   {"status": "ok", "model": NAME}
  GET  /v1/models                the one model served
"""

import argparse
import collections
import io
import json
import math
import os
import socketserver
import sys
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

READY_PREFIX = "chartroom-whisper ready"

# Whisper's own thresholds (as in OpenAI's reference decoder), applied per segment.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4
# Phrases Whisper is known to produce from silence, noise or music (subtitle credits and sign
# offs from its training data). Dropped when a whole segment is one of them and the model was
# not confident it heard speech.
KNOWN_INVENTIONS = {
    "thank you",
    "thank you very much",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "please subscribe",
    "like and subscribe",
    "subtitles by the amara org community",
    "you",
    "bye",
    "so",
    "okay",
}
INVENTION_NO_SPEECH = 0.15
INVENTION_LOG_PROB = -0.6
# Voice-activity detection (Silero): speech shorter than a pause of this length stays one
# chunk, and chunks are padded so word edges are not cut.
VAD_PARAMETERS = {"min_silence_duration_ms": 500, "speech_pad_ms": 200}

# What a clip with no speech reports (the model is not run on it at all).
NoSpeech = collections.namedtuple("NoSpeech", "language duration")


def normalize(text):
    return " ".join(
        "".join(c.lower() if c.isalnum() else " " for c in text).split()
    )


def keep_segment(seg):
    """Whether a recognized segment is kept (the filters against invented text)."""
    if seg.no_speech_prob > NO_SPEECH_THRESHOLD and seg.avg_logprob < LOG_PROB_THRESHOLD:
        return False
    if seg.compression_ratio > COMPRESSION_RATIO_THRESHOLD:
        return False
    norm = normalize(seg.text)
    if not norm:
        return False
    if norm in KNOWN_INVENTIONS and (
        seg.no_speech_prob > INVENTION_NO_SPEECH or seg.avg_logprob < INVENTION_LOG_PROB
    ):
        return False
    return True


def supported_languages():
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return _LANGUAGE_CODES


class BadRequest(Exception):
    def __init__(self, status, message, code=None, param=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def parse_multipart(content_type, body):
    """The form fields of a multipart/form-data body: name -> bytes."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(400, "expected multipart/form-data", "invalid_content_type")
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not msg.is_multipart():
        raise BadRequest(400, "malformed multipart body", "invalid_multipart")
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        fields[str(name)] = payload if payload is not None else b""
    return fields


def text_field(fields, name, limit=4096):
    raw = fields.get(name)
    if raw is None:
        return None
    if len(raw) > limit:
        raise BadRequest(400, f"field '{name}' is too long", "field_too_long", name)
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(400, f"field '{name}' is not UTF-8", "invalid_field", name)
    return value or None


class Engine:
    """The loaded model and the bounded queue in front of it."""

    def __init__(self, args):
        from faster_whisper import WhisperModel

        self.model_name = args.model_name
        self.beam_size = args.beam_size
        self.model = WhisperModel(
            args.model,
            device="cpu",
            compute_type="int8",
            cpu_threads=args.threads,
            num_workers=1,
            local_files_only=True,
        )
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(args.max_waiting + 1)

    def transcribe(self, audio_bytes, prompt, language, temperature):
        from faster_whisper import decode_audio
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if not self.slots.acquire(blocking=False):
            raise BadRequest(429, "busy: too many transcriptions waiting", "rate_limited")
        try:
            try:
                audio = decode_audio(io.BytesIO(audio_bytes), sampling_rate=16000)
            except Exception:
                raise BadRequest(400, "the file is not decodable audio", "invalid_audio", "file")
            duration = len(audio) / 16000.0
            # No speech at all (or next to no audio): nothing to recognize, and no language
            # detection to pay for.
            if duration < 0.1 or not get_speech_timestamps(audio, VadOptions(**VAD_PARAMETERS)):
                return [], NoSpeech(language, duration), 0
            with self.lock:
                segments, info = self.model.transcribe(
                    audio,
                    language=language,
                    initial_prompt=prompt,
                    temperature=temperature,
                    beam_size=self.beam_size,
                    vad_filter=True,
                    vad_parameters=VAD_PARAMETERS,
                    condition_on_previous_text=False,
                    no_speech_threshold=NO_SPEECH_THRESHOLD,
                    log_prob_threshold=LOG_PROB_THRESHOLD,
                    compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
                )
                recognized = list(segments)
        finally:
            self.slots.release()
        kept = [s for s in recognized if keep_segment(s)]
        return kept, info, len(recognized) - len(kept)


def verbose_body(kept, info):
    segments = []
    for i, s in enumerate(kept):
        segments.append(
            {
                "id": i,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
        )
    return {
        "task": "transcribe",
        "language": info.language,
        "duration": round(info.duration, 3),
        "text": "".join(s.text for s in kept).strip(),
        "segments": segments,
    }


def make_handler(engine, max_bytes):
    class Handler(BaseHTTPRequestHandler):
        server_version = "chartroom-whisper"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = 60

        def log_message(self, fmt, *args):  # no client data in logs
            pass

        def log_line(self, status, size, started):
            sys.stderr.write(
                "chartroom-whisper %s %s %d bytes=%d ms=%d\n"
                % (self.command, self.path.split("?")[0], status, size,
                   int((time.monotonic() - started) * 1000))
            )

        def send_json(self, status, body, extra_headers=()):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra_headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def send_error_json(self, err):
            headers = []
            if err.status == 429:
                headers.append(("Retry-After", "2"))
            if err.status in (411, 413):
                headers.append(("Connection", "close"))
                self.close_connection = True
            self.send_json(
                err.status,
                {"error": {"message": err.message, "type": "invalid_request_error",
                           "param": err.param, "code": err.code}},
                headers,
            )

        def do_GET(self):
            started = time.monotonic()
            path = self.path.split("?")[0]
            if path == "/health":
                self.send_json(200, {"status": "ok", "model": engine.model_name})
                status = 200
            elif path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [
                    {"id": engine.model_name, "object": "model", "owned_by": "local"}]})
                status = 200
            else:
                self.send_error_json(BadRequest(404, "not found", "not_found"))
                status = 404
            self.log_line(status, 0, started)

        def do_POST(self):
            started = time.monotonic()
            size = 0
            try:
                if self.path.split("?")[0] != "/v1/audio/transcriptions":
                    raise BadRequest(404, "not found", "not_found")
                if self.headers.get("Transfer-Encoding"):
                    raise BadRequest(411, "a Content-Length is required", "length_required")
                try:
                    size = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    raise BadRequest(411, "a Content-Length is required", "length_required")
                if size < 0 or size > max_bytes:
                    raise BadRequest(413, f"the request exceeds {max_bytes} bytes", "too_large")
                body = self.rfile.read(size)
                if len(body) != size:
                    raise BadRequest(400, "the request body was cut short", "short_body")
                fields = parse_multipart(self.headers.get("Content-Type", ""), body)
                del body
                audio = fields.get("file")
                if not audio:
                    raise BadRequest(400, "the 'file' field is required", "missing_file", "file")
                model = text_field(fields, "model", 200)
                if model not in (None, engine.model_name, "whisper-1"):
                    raise BadRequest(404, "this server serves one model: " + engine.model_name,
                                     "model_not_found", "model")
                prompt = text_field(fields, "prompt", 8192)
                language = text_field(fields, "language", 16)
                if language is not None:
                    # A BCP 47 tag is accepted by its primary subtag (`en-US` is `en`).
                    language = language.split("-")[0].split("_")[0].lower()
                    if language not in supported_languages():
                        raise BadRequest(400, "language must be an ISO 639-1 code Whisper knows",
                                         "invalid_language", "language")
                fmt = text_field(fields, "response_format", 32) or "json"
                if fmt not in ("json", "verbose_json", "text"):
                    raise BadRequest(400, "response_format must be json, verbose_json or text",
                                     "invalid_response_format", "response_format")
                temp_raw = text_field(fields, "temperature", 32)
                if temp_raw is None:
                    temperature = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
                else:
                    try:
                        t = float(temp_raw)
                    except ValueError:
                        t = -1.0
                    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
                        raise BadRequest(400, "temperature must be between 0 and 1",
                                         "invalid_temperature", "temperature")
                    temperature = t
                kept, info, _dropped = engine.transcribe(audio, prompt, language, temperature)
                body = verbose_body(kept, info)
                if fmt == "verbose_json":
                    self.send_json(200, body)
                elif fmt == "json":
                    self.send_json(200, {"text": body["text"]})
                else:
                    data = (body["text"] + "\n").encode("utf-8")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                self.log_line(200, size, started)
            except BadRequest as err:
                self.send_error_json(err)
                self.log_line(err.status, size, started)
            except Exception as exc:  # never echo details: they may carry request content
                sys.stderr.write("chartroom-whisper internal error: %s\n" % type(exc).__name__)
                self.send_error_json(BadRequest(500, "internal error", "internal_error"))
                self.log_line(500, size, started)

    return Handler


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def server_bind(self):
        if os.path.exists(self.server_address):
            os.unlink(self.server_address)
        old = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(old)
        self.server_name = "localhost"
        self.server_port = 0

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16


def exit_on_stdin_eof():
    why = "stdin closed"
    try:
        while True:
            chunk = sys.stdin.buffer.read(4096)
            if not chunk:
                why = "stdin closed (%r)" % (chunk,)
                break
    except Exception as exc:
        why = "stdin unreadable (%s)" % type(exc).__name__
    try:  # the supervisor may be gone, and its end of stderr with it
        sys.stderr.write("chartroom-whisper exiting: %s\n" % why)
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="directory of the CTranslate2 Whisper model")
    p.add_argument("--model-name", default="whisper-base", help="the model name served")
    p.add_argument("--port", type=int, default=0, help="loopback port (0: the kernel picks)")
    p.add_argument("--unix", help="listen on this Unix socket path instead of loopback")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--max-bytes", type=int, default=25 * 1024 * 1024)
    p.add_argument("--max-waiting", type=int, default=4)
    p.add_argument("--exit-on-stdin-eof", action="store_true")
    args = p.parse_args()
    if not 1 <= args.threads <= 64 or not 1 <= args.beam_size <= 10 or args.max_bytes < 1024:
        p.error("--threads 1..64, --beam-size 1..10, --max-bytes >= 1024")
    if args.exit_on_stdin_eof:
        threading.Thread(target=exit_on_stdin_eof, daemon=True).start()

    engine = Engine(args)
    handler = make_handler(engine, args.max_bytes)
    if args.unix:
        server = UnixHTTPServer(args.unix, handler)
        ready = "unix=" + args.unix
    else:
        server = LoopbackHTTPServer(("127.0.0.1", args.port), handler)
        ready = "port=%d" % server.server_address[1]
    print("%s %s" % (READY_PREFIX, ready), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
