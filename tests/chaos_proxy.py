#!/usr/bin/env python3
"""A TCP proxy for tests/chaos.sh: listens on 127.0.0.1:LISTEN and pipes each connection to
127.0.0.1:UPSTREAM. The broker advertises LISTEN, so every client connection goes through it,
and the script makes broker trouble with signals: SIGSTOP freezes every connection at once (a
network partition: no data, no reset), kill -9 drops them all (as a broker restart does).

    tests/chaos_proxy.py LISTEN UPSTREAM PIDFILE
"""
import os
import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    listen, upstream, pidfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(128)
    with open(pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    while True:
        client, _ = server.accept()
        try:
            broker = socket.create_connection(("127.0.0.1", upstream))
        except OSError:
            client.close()
            continue
        for a, b in ((client, broker), (broker, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


main()
