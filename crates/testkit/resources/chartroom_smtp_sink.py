"""A real SMTP server's handler for Chartroom's tests (aiosmtpd, Debian's python3-aiosmtpd).

Run as: python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c chartroom_smtp_sink.Sink OUTDIR

Every EHLO/HELO appends a line to OUTDIR/connections. Every message accepted is written,
exactly as received (after dot-unstuffing), to OUTDIR/messages/NNNNNN.eml, with its envelope
in NNNNNN.env (MAIL FROM on the first line, one RCPT TO per line after it).

Scripted failures: when OUTDIR/script holds lines, the first line is removed and returned as
the reply to the next DATA (e.g. "451 4.3.0 Try again later" or "550 5.1.1 No such user"),
and nothing is stored.
"""

import os


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(os.path.join(outdir, "messages"), exist_ok=True)
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("usage: chartroom_smtp_sink.Sink OUTDIR")
        return cls(args[0])

    def _log_connection(self, hostname):
        with open(os.path.join(self.outdir, "connections"), "a") as f:
            f.write("%s\n" % hostname)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self._log_connection(hostname)
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self._log_connection(hostname)
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    def _scripted(self):
        path = os.path.join(self.outdir, "script")
        try:
            with open(path) as f:
                lines = [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return None
        if not lines:
            return None
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines[1:]))
        return lines[0]

    async def handle_DATA(self, server, session, envelope):
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        self.count += 1
        base = os.path.join(self.outdir, "messages", "%06d" % self.count)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        with open(base + ".tmp", "wb") as f:
            f.write(content)
        with open(base + ".env", "w") as f:
            f.write("%s\n" % envelope.mail_from)
            for rcpt in envelope.rcpt_tos:
                f.write("%s\n" % rcpt)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 Message accepted for delivery"
