"""A stand-in mail endpoint for trying the send-email example: it prints
every message posted to it and answers 202. Python's standard library
only; listens on 127.0.0.1:8025 unless given another port.

    python3 examples/send-email/mail_sink.py [PORT]
"""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.read_body()
        print(
            f"{self.path} idempotency-key={self.headers.get('idempotency-key')} "
            f"authorization={'yes' if self.headers.get('authorization') else 'no'}\n"
            f"{body.decode('utf-8', 'replace')}",
            flush=True,
        )
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def read_body(self):
        # Guests send bodies chunked, without a content-length.
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8025
HTTPServer(("127.0.0.1", port), Sink).serve_forever()
