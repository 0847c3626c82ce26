"""python-fetch: GET one URL with Python, through the proxy in the environment.

    python3 python-fetch.py requests|urllib URL

requests reads HTTP(S)_PROXY and REQUESTS_CA_BUNDLE; urllib reads the same proxy variables
(urllib.request.getproxies) and trusts SSL_CERT_FILE through OpenSSL's default paths. A proxy URL
with user:password is sent as Proxy-Authorization: Basic by both. Prints "status <code>" on stderr
and the body on stdout; exits 0 on a response (any status), 1 on an error.
"""
import sys

lib, url = sys.argv[1], sys.argv[2]
try:
    if lib == "requests":
        import requests

        r = requests.get(url, timeout=30)
        status, body = r.status_code, r.content
    else:
        import ssl
        import urllib.error
        import urllib.request

        ctx = ssl.create_default_context()
        try:
            with urllib.request.urlopen(url, timeout=30, context=ctx) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
except Exception as e:  # report every transport error the same way
    print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(f"status {status}", file=sys.stderr)
sys.stdout.buffer.write(body)
