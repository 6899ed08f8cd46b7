"""Drain 1,000 queued texts through the real twilio Client into a local fake of Twilio.

Prints throughput against a baseline (the same Client calling the fake directly, no outbox) and
how closely shared pacing holds a configured SMS_RATE (target: within 10%).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import Settings  # noqa: E402
from incidents import records
from outbox import backends, queue
from outbox.sender import Sender  # noqa: E402
from rate_limiter import RateLimiter  # noqa: E402
from services import build_services  # noqa: E402
from tests.support.fakes.twilio_api import FakeTwilio  # noqa: E402

COUNT = 1000
PACED_COUNT = 200
PACED_RATE = 50.0
TO = "+15555550100"


def drain(settings: Settings, count: int) -> tuple[float, list[float]]:
    """Seconds to send `count` queued texts, and the fake's receive times."""
    svc = build_services(settings)
    fake = FAKE
    start_index = len(fake.messages)
    with svc.engine.begin() as conn:
        for i in range(count):
            queue.enqueue(conn, TO, f"bench text {i}", "reply", settings)
    storm = RateLimiter(svc.limiter.storage, settings.alert_limits, "alerts")
    sender = Sender(svc.engine, settings, backends.make_backend(settings, 5), storm, records, "bench")
    started = time.perf_counter()
    while len(fake.messages) - start_index < count:
        if not sender.step():
            time.sleep(0.001)
    elapsed = time.perf_counter() - started
    svc.close()
    return elapsed, [m.at for m in fake.messages[start_index:]]


def main() -> None:
    global FAKE
    logging.disable(logging.INFO)
    tmp = tempfile.mkdtemp(prefix="outbox-bench-")
    settings = Settings(
        twilio_auth_token="bench-token-0123456789",
        twilio_account_sid="AC" + "1" * 32,
        twilio_from_number="+15005550006",
        sms_backend="twilio",
        database_url=f"sqlite:///{tmp}/operator.db",
        log_dir=tmp,
    )
    FAKE = FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token).start()
    settings = replace(settings, twilio_api_url=FAKE.url)

    backend = backends.make_backend(settings, 5)
    started = time.perf_counter()
    for i in range(COUNT):
        backend.send(TO, f"baseline text {i}", "")
    baseline = COUNT / (time.perf_counter() - started)

    elapsed, _ = drain(replace(settings, sms_rate=100_000.0), COUNT)
    outbox_rate = COUNT / elapsed
    print(f"baseline (Client -> fake, no outbox): {baseline:8.1f} texts/s")
    print(f"outbox drain, SMS_RATE=100000:        {outbox_rate:8.1f} texts/s "
          f"({outbox_rate / baseline:.2f}x baseline)")  # fmt: skip

    elapsed, times = drain(replace(settings, sms_rate=PACED_RATE), PACED_COUNT)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    error = abs(achieved - PACED_RATE) / PACED_RATE
    print(f"paced drain, SMS_RATE={PACED_RATE:g}:             {achieved:8.2f} texts/s "
          f"({achieved / PACED_RATE:.3f}x configured, off by {error:.1%}; target within 10%)")  # fmt: skip
    FAKE.stop()
    if error > 0.10:
        sys.exit(1)


if __name__ == "__main__":
    main()
