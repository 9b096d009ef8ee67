"""A tiny HTTP backend for the lab: answers every GET with its own name.

Run inside a backend's namespace (stdlib only, so any python3 works)::

    ip netns exec lbpair-foo1 python3 lab/backend_http.py foo1 198.51.100.11 80

``GET /anything`` answers ``200`` with the body ``foo1\\n``; ``HEAD`` the same headers. It prints
``ready`` on stdout once it listens, so a parent can wait for that line.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(name):
    """Return a request handler class that answers with *name*."""
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        """Answers GET and HEAD on any path with the backend's name."""

        server_version = f"lbpair-backend/{name}"

        def do_HEAD(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.do_HEAD()
            self.wfile.write(body)

        def log_message(self, *args):
            """Stay quiet: tests read stdout only for the ready line."""

    return Handler


def main(argv):
    """Serve ``NAME ADDRESS PORT`` until killed."""
    name, address, port = argv[1], argv[2], int(argv[3])
    server = ThreadingHTTPServer((address, port), make_handler(name))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
