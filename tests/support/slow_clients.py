"""Slow clients: sockets that send a request line and then trickle header bytes, never finishing."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import REPO
from tests.support.processes import running
from tests.support.servers import free_port, unavailable

NGINX = "/usr/sbin/nginx"


@contextmanager
def trickling(port: int, count: int, interval: float = 0.5) -> Iterator[list[socket.socket]]:
    """`count` connections to 127.0.0.1:port, each adding one header byte every `interval`."""
    stop = threading.Event()
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /sms HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)

        def trickle() -> None:
            # Bounded by the test: it stops when the block ends (and the header would hit the
            # servers' 8 KB limit only after more than an hour).
            while not stop.wait(interval):
                for sock in socks:
                    with contextlib.suppress(OSError):
                        sock.send(b"x")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        yield socks
        stop.set()
        thread.join()
    finally:
        stop.set()
        for sock in socks:
            sock.close()


def still_waiting(socks: list[socket.socket]) -> int:
    """How many of the slow connections the server has neither answered nor closed."""
    waiting = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            sock.recv(1, socket.MSG_PEEK)  # an answer (408, 400) or b"" for closed
        except BlockingIOError:
            waiting += 1
        except OSError:
            pass
        finally:
            sock.setblocking(True)
    return waiting


NGINX_MAIN = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream operator {{ server 127.0.0.1:{upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        include {proxy_rules};
    }}
}}
"""


@contextmanager
def nginx_in_front(tmp: Path, upstream_url: str, port: int | None = None) -> Iterator[str]:
    """Debian's nginx on loopback (a free port by default) with the shipped proxy rules; yields its URL."""
    if not os.path.exists(NGINX):
        unavailable("nginx is not installed (apt-get install nginx)")
    port = port or free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_MAIN.format(
            tmp=tmp,
            # As root, nginx's workers would switch to nobody, who cannot enter pytest's temp dirs.
            user="user root;" if os.geteuid() == 0 else "",
            upstream=upstream_url.rsplit(":", 1)[1],
            port=port,
            proxy_rules=REPO / "deploy" / "nginx" / "operator-proxy.conf",
        )
    )
    url = f"http://127.0.0.1:{port}"
    cmd = [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")]
    with running(cmd, url + "/livez", tmp / "nginx.log", cwd=tmp):
        yield url
