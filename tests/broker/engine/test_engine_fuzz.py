"""Whatever bytes a client sends, the engine answers or closes that one connection.

Invariant: `data_received` never raises, and a connection it closes leaves the broker
serving everyone else.
"""

from __future__ import annotations

import functools
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.mqtt import Publish, Subscribe, Subscription, encode
from tests.broker.engine.engine_pairs import connected, make_broker


class _FailOnError(logging.Handler):
    """Internal errors are caught per connection in production; here they are bugs."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            raise AssertionError(record.getMessage())


def strict_logging(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        handler = _FailOnError()
        logger = logging.getLogger("broker")
        logger.addHandler(handler)
        try:
            test(*args, **kwargs)
        finally:
            logger.removeHandler(handler)

    return run

valid_packets = st.sampled_from([
    encode(Publish("a/b", b"x", 1, packet_id=1), 5),
    encode(Publish("a/b", b"x", 2, packet_id=2), 5),
    encode(Subscribe(3, [Subscription("a/#", 2)]), 5),
    b"\xc0\x00",  # PINGREQ
    b"\x62\x02\x00\x02",  # PUBREL 2
    b"\xe0\x00",  # DISCONNECT
])
chunks = st.lists(st.one_of(valid_packets, st.binary(max_size=40)), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks, st.sampled_from([4, 5]))
@strict_logging
def test_arbitrary_input_after_connect_never_escapes_the_connection(data, level):
    broker, _ = make_broker()
    watcher = connected(broker, "watcher")
    watcher.send(Subscribe(1, [Subscription("probe", 0)]))
    watcher.received()
    victim = connected(broker, "victim", level=level)
    for chunk in data:
        victim.conn.data_received(chunk)
    other = connected(broker, "other")
    other.send(Publish("probe", b"still here"))
    assert [p.payload for p in watcher.received() if isinstance(p, Publish)] == [b"still here"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
@strict_logging
def test_arbitrary_first_bytes_never_escape_the_connection(data):
    broker, _ = make_broker()
    from tests.broker.engine.engine_pairs import Peer

    peer = Peer(broker, 4)
    peer.conn.data_received(data)
    assert connected(broker, "fine").link.closed is False
