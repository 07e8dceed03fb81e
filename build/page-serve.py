#!/usr/bin/env python3
"""Serves agent/assets/index.html at / and passes /status and /metrics on
to the agent, for build/e2e-page.sh while the agent does not serve the page
itself yet. It sends the response headers the agent is to send with the
page (a Content-Security-Policy that allows nothing from elsewhere, so a
page that reaches for an external asset fails the test), and forwards the
Authorization header, as the browser would send it to the agent.

Usage: page-serve.py PAGE LISTEN_PORT AGENT_PORT   (all on 127.0.0.1)
"""

import http.server
import sys
import urllib.error
import urllib.request

PAGE, PORT, AGENT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

# The headers the agent's GET / is to answer with (see docs/dashboards.md).
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            body = open(PAGE, "rb").read()
            self.send_response(200)
            for k, v in PAGE_HEADERS.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path in ("/status", "/metrics"):
            self.proxy(path)
        else:
            self.send_error(404)

    def proxy(self, path):
        req = urllib.request.Request(f"http://127.0.0.1:{AGENT}{path}")
        if "Authorization" in self.headers:
            req.add_header("Authorization", self.headers["Authorization"])
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                status, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as e:
            status, ctype, body = e.code, e.headers.get("Content-Type", ""), e.read()
        except OSError:
            self.send_error(502, "agent not answering")
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
