"""Slow clients cannot hold signed texts past Twilio's 15 s deadline, with or without nginx in front.

Each signed text is sent with a 10 s client timeout: under Twilio's 15 s, so a text stuck
behind the slow sockets fails the test instead of merely being late.
"""

from __future__ import annotations

import time

import pytest

from tests.support.live_server import SignedClient, base_env, gunicorn
from tests.support.phones import ADMIN, TOKEN, reply_text
from tests.support.servers import free_port
from tests.support.slow_clients import nginx_in_front, still_waiting, trickling

pytestmark = pytest.mark.slow

TWILIO_PATIENCE = 10


def env_for(tmp_path, **overrides: str) -> dict[str, str]:
    return base_env(
        tmp_path, TWILIO_AUTH_TOKEN=TOKEN, AUTHORIZED_NUMBERS=f"{ADMIN}:admin", RATE_LIMIT="100 per minute",
        **overrides,
    )  # fmt: skip


def answered(client: SignedClient, texts: int) -> list[str | None]:
    replies = []
    for _ in range(texts):
        response = client.post(ADMIN, "help", timeout=TWILIO_PATIENCE)
        assert response.status_code == 200
        replies.append(reply_text(response.content))
    return replies


def test_gunicorn_alone_answers_signed_texts_while_four_clients_trickle_their_headers(tmp_path):
    # The production defaults: WEB_CONCURRENCY=2 workers, WEB_THREADS=8 each.
    with gunicorn(tmp_path, env_for(tmp_path), workers=2) as url:
        port = int(url.rsplit(":", 1)[1])
        with trickling(port, 4) as slow:
            # Let the slow requests reach the workers before the texts arrive.
            time.sleep(1.5)
            replies = answered(SignedClient(url, TOKEN), 6)
            assert still_waiting(slow) == 4
    assert all(r and r.startswith("Commands:") for r in replies), replies


def test_behind_nginx_signed_texts_are_answered_while_fifty_slow_sockets_are_open(tmp_path):
    port = free_port()
    # Twilio signs the URL it calls: nginx's. One proxy in front, as deploy/nginx documents.
    env = env_for(tmp_path / "web", PUBLIC_URL=f"http://127.0.0.1:{port}", PROXY_HOPS="1")
    with gunicorn(tmp_path / "web", env, workers=2) as upstream:
        with nginx_in_front(tmp_path, upstream, port) as url:
            with trickling(port, 50) as slow:
                time.sleep(1.5)
                replies = answered(SignedClient(url, TOKEN), 6)
                assert still_waiting(slow) == 50
    assert all(r and r.startswith("Commands:") for r in replies), replies
