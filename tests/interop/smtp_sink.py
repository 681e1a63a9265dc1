"""A real SMTP server (aiosmtpd) for keybridge's invitation e-mail tests.

Listens on 127.0.0.1:PORT, optionally offering STARTTLS (and then requiring it) with the
given certificate chain and key. Recipients whose local part starts with "refused" are
refused with 550; those starting with "busy" get 451 (try again later) the first time and
are accepted after that, as a greylisting relay does; every accepted message is written to DIR as one JSON file
({"mail_from", "rcpt_tos", "data"}). Prints "ready" once it accepts connections and runs
until its standard input closes.
"""

import argparse
import json
import os
import ssl
import sys
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.greylisted = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("refused"):
            return "550 5.1.1 <%s>: recipient address rejected: mailbox unavailable" % address
        if address.lower().startswith("busy") and address.lower() not in self.greylisted:
            self.greylisted.add(address.lower())
            return "451 4.7.1 <%s>: greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        name = os.path.join(self.out_dir, uuid.uuid4().hex)
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name + ".json")
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
