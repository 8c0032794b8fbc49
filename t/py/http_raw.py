#!/usr/bin/python3
"""t/py/http_raw.py: Python's http.client as an outside client for the
7xx tests. Usage: http_raw.py HOST PORT MODE
  pipeline N   sends N GET requests in one write, reads N responses with
               http.client, prints "STATUS BODY" for each, in order
  raw          sends stdin's bytes as they are, reads one response with
               http.client, prints "STATUS" and whether the server then
               closed the connection ("closed" or "open")
"""
import http.client
import socket
import sys


class Shared:
    """The socket's one buffered file, which responses do not close."""

    def __init__(self, f):
        self.f = f

    def __getattr__(self, name):
        return getattr(self.f, name)

    def close(self):
        pass


class OneFile:
    """A socket stand-in whose makefile() is always the same buffered
    file, so that responses read one after the other share it."""

    def __init__(self, f):
        self.f = Shared(f)

    def makefile(self, *args, **kwargs):
        return self.f


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port), timeout=10)
    f = sock.makefile("rb")
    if mode == "pipeline":
        n = int(sys.argv[4])
        reqs = "".join("GET /users/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i
                       for i in range(n))
        sock.sendall(reqs.encode())
        for _ in range(n):
            r = http.client.HTTPResponse(OneFile(f), method="GET")
            r.begin()
            print(r.status, r.read().decode().strip())
    else:
        sock.sendall(sys.stdin.buffer.read())
        r = http.client.HTTPResponse(OneFile(f), method="GET")
        r.begin()
        r.read()
        print(r.status)
        try:
            rest = sock.recv(1)
            print("closed" if rest == b"" else "open")
        except ConnectionResetError:
            print("closed")
        except socket.timeout:
            print("open")
    sock.close()


main()
