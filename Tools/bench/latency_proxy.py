#!/usr/bin/env python3
"""An HTTP/1.1 proxy that adds a fixed latency to every request (for the remote-read
benchmark; loopback has no netem here). One thread per client connection, one kept-alive
upstream connection per client connection; each request waits DELAY ms before it is
forwarded. Responses are relayed unchanged (Content-Length bodies, as nginx sends for
static files and byte ranges).

    python3 Tools/bench/latency_proxy.py --listen 18091 --upstream 18090 --delay-ms 10
"""
import argparse
import socket
import threading
import time


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def serve(client, upstream_port, delay):
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up = socket.create_connection(("127.0.0.1", upstream_port))
    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cbuf, ubuf = b"", b""
    try:
        while True:
            head, cbuf = read_head(client, cbuf)
            if head is None:
                return
            if delay > 0:
                time.sleep(delay)
            up.sendall(head + b"\r\n\r\n")
            rhead, ubuf = read_head(up, ubuf)
            if rhead is None:
                return
            n = content_length(rhead)
            while len(ubuf) < n:
                chunk = up.recv(1 << 20)
                if not chunk:
                    return
                ubuf += chunk
            body, ubuf = ubuf[:n], ubuf[n:]
            client.sendall(rhead + b"\r\n\r\n" + body)
    except OSError:
        return
    finally:
        client.close()
        up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    a = ap.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.listen))
    s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, a.upstream, a.delay_ms / 1000.0), daemon=True).start()


if __name__ == "__main__":
    main()
