"""Verifies a message's DKIM signature offline (Debian's python3-dkim).

Usage: python3 chartroom_dkim_verify.py MESSAGE_FILE "v=DKIM1; k=ed25519; p=..."
The given TXT record answers the DNS lookup for whatever selector and domain the signature
names; the selector and domain it asked for are printed. Exit 0 when the signature verifies.
"""

import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    record = sys.argv[2].encode("ascii")
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name.decode("ascii") if isinstance(name, bytes) else name)
        return record

    ok = dkim.verify(message, dnsfunc=dnsfunc)
    print("asked:", " ".join(asked))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
