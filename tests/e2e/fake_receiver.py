"""A scripted receiving gateway for delivery tests: HTTPS on loopback with
a dev PKI server certificate, client certificates required, every POST
recorded, answers chosen by a function. Standard library only."""

import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Received:
    def __init__(self, path, headers, body, peer_cert):
        self.path = path
        self.headers = headers
        self.body = body
        self.peer_cert = peer_cert

    def json(self):
        return json.loads(self.body)


class FakeReceiver:
    """answer(received) returns (status, extra headers dict, body bytes)
    or a number of seconds to sleep first as a 4th element."""

    def __init__(self, pki, cert="gateway2", answer=None, port=0):
        self.received = []
        self.lock = threading.Lock()
        self.answer = answer or (lambda r: (200, {}, b"{}"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(pki, cert + ".crt"),
                            os.path.join(pki, cert + ".key"))
        ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                rec = Received(self.path, dict(self.headers), body,
                               self.connection.getpeercert())
                with fake.lock:
                    fake.received.append(rec)
                out = fake.answer(rec)
                status, headers, data = out[:3]
                if len(out) > 3 and out[3]:
                    time.sleep(out[3])
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(10)
                try:
                    return ctx.wrap_socket(sock, server_side=True), addr
                except (ssl.SSLError, OSError):
                    sock.close()
                    raise

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self):
        with self.lock:
            return len(self.received)

    def bodies(self):
        with self.lock:
            return [r.json() for r in self.received]


def outcome(code, text):
    return json.dumps({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code,
                   "diagnostics": text}],
    }).encode()


def closed_port():
    """A loopback port with nobody listening (for 'receiver down')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
