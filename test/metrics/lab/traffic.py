"""Independent traffic tools for the metrics lab tests (Python stdlib only, no egressd code).

Run as `python3 -c "$(cat traffic.py)" COMMAND ARGS...` so that a non-root uid can run it from
anywhere. Every command prints JSON, one object per line.

  serve HOST SINK_PORT SOURCE_PORT SOURCE_BYTES
      SINK_PORT reads until EOF and closes; SOURCE_PORT sends SOURCE_BYTES bytes and closes.
      Prints {"listening": true} once both are bound, then one line per finished connection:
      {"port": P, "received": N, "sent": M}.
  socks-send PROXY PORT DST DPORT NBYTES
      SOCKS5 CONNECT (RFC 1928, no auth, IPv4), send NBYTES, half-close, read until EOF.
  socks-recv PROXY PORT DST DPORT
      SOCKS5 CONNECT, send nothing, read until EOF.
      Both print {"sent": N, "received": M} (payload only: the SOCKS handshake is not counted).
  udp-send DST DPORT COUNT SIZE
      Sends COUNT datagrams of SIZE bytes; prints {"ok": N, "eperm": N, "errors": [...]}.
  poll URL SECONDS INTERVAL
      GETs URL every INTERVAL s for SECONDS s; one line per answer: {"t": ms epoch, "code": C, "body": B}.
"""
import errno
import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

CHUNK = 65536


def out(obj):
    print(json.dumps(obj), flush=True)


def serve(host, sink_port, source_port, source_bytes):
    def sink(conn):
        n = 0
        with conn:
            while True:
                d = conn.recv(CHUNK)
                if not d:
                    break
                n += len(d)
        out({"port": sink_port, "received": n, "sent": 0})

    def source(conn):
        sent = 0
        block = bytes(range(256)) * (CHUNK // 256)
        with conn:
            while sent < source_bytes:
                sent += conn.send(block[: min(CHUNK, source_bytes - sent)])
        out({"port": source_port, "received": 0, "sent": sent})

    socks = []
    for port, handler in ((sink_port, sink), (source_port, source)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
        socks.append((s, handler))
    out({"listening": True})

    def accept_loop(s, handler):
        while True:
            conn, _ = s.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    threads = [threading.Thread(target=accept_loop, args=sh, daemon=True) for sh in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError(f"proxy closed after {len(buf)} of {n} handshake bytes")
        buf += d
    return buf


def socks_connect(proxy, port, dst, dport):
    s = socket.create_connection((proxy, port), timeout=20)
    s.sendall(b"\x05\x01\x00")  # VER, NMETHODS, NO AUTHENTICATION REQUIRED (RFC 1928 section 3)
    if recv_exact(s, 2) != b"\x05\x00":
        raise RuntimeError("proxy refused the no-auth method")
    s.sendall(b"\x05\x01\x00\x01" + ipaddress.IPv4Address(dst).packed + dport.to_bytes(2, "big"))  # CONNECT, IPv4
    ver, rep, _, atyp = recv_exact(s, 4)
    if ver != 5 or rep != 0:
        raise RuntimeError(f"CONNECT failed: reply {rep}")
    alen = {1: 4, 4: 16}.get(atyp)
    if alen is None:
        alen = recv_exact(s, 1)[0]
    recv_exact(s, alen + 2)  # BND.ADDR, BND.PORT
    return s


def read_to_eof(s):
    n = 0
    while True:
        d = s.recv(CHUNK)
        if not d:
            return n
        n += len(d)


def socks_send(proxy, port, dst, dport, nbytes):
    s = socks_connect(proxy, port, dst, dport)
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < nbytes:
        sent += s.send(block[: min(CHUNK, nbytes - sent)])
    s.shutdown(socket.SHUT_WR)
    received = read_to_eof(s)
    s.close()
    out({"sent": sent, "received": received})


def socks_recv(proxy, port, dst, dport):
    s = socks_connect(proxy, port, dst, dport)
    received = read_to_eof(s)
    s.close()
    out({"sent": 0, "received": received})


def udp_send(dst, dport, count, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ok = eperm = 0
    errors = []
    for _ in range(count):
        try:
            s.sendto(b"x" * size, (dst, dport))
            ok += 1
        except OSError as e:
            if e.errno == errno.EPERM:
                eperm += 1
            else:
                errors.append(str(e))
        time.sleep(0.02)
    out({"ok": ok, "eperm": eperm, "errors": errors})


def poll(url, seconds, interval):
    end = time.time() + seconds
    while time.time() < end:
        t = time.time()
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                code, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read().decode()
        except OSError as e:
            code, body = 0, str(e)
        out({"t": round(t * 1000), "code": code, "body": body.strip()})
        time.sleep(interval)


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "serve":
        serve(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "socks-send":
        socks_send(args[0], int(args[1]), args[2], int(args[3]), int(args[4]))
    elif cmd == "socks-recv":
        socks_recv(args[0], int(args[1]), args[2], int(args[3]))
    elif cmd == "udp-send":
        udp_send(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "poll":
        poll(args[0], float(args[1]), float(args[2]))
    else:
        raise SystemExit(f"unknown command {cmd}")


main(sys.argv[1:])
