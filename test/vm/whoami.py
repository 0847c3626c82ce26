"""What-is-my-IP for the VM lab: answers GET / with the client's address, as the exit's masquerade
or a leak makes it appear, and GET /slow with 120 chunks of 1 KiB half a second apart (a minute
long), for a connection that must stay open across a reload. python3 whoami.py ADDRESS PORT"""
import http.server
import sys
import time

SLOW_CHUNKS = 120
SLOW_CHUNK = b"x" * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        slow = self.path == "/slow"
        body = b"" if slow else self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(SLOW_CHUNKS * len(SLOW_CHUNK) if slow else len(body)))
        self.end_headers()
        if not slow:
            self.wfile.write(body)
            return
        for _ in range(SLOW_CHUNKS):
            self.wfile.write(SLOW_CHUNK)
            self.wfile.flush()
            time.sleep(0.5)


http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
