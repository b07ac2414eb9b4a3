"""Flapping detection: too many connects of one identity in a window refuse it for a while."""

from __future__ import annotations

from broker.engine.flapping import detector_for
from broker.mqtt import Connack
from tests.broker.engine.engine_pairs import Peer, make_broker

FLAPS = {"flap_max": 3, "flap_window": 10.0, "flap_ban": 30.0}


def _code(broker: object, client_id: str, level: int = 5) -> int:
    connack = Peer(broker, level).connect(client_id)  # type: ignore[arg-type]
    assert isinstance(connack, Connack)
    return int(connack.reason_code)


def test_connects_up_to_the_limit_within_the_window_are_accepted() -> None:
    broker, _ = make_broker(**FLAPS)
    assert [_code(broker, "dev") for _ in range(3)] == [0, 0, 0]


def test_one_connect_too_many_in_the_window_is_refused_with_0x9f_and_counted() -> None:
    broker, _ = make_broker(**FLAPS)
    codes = [_code(broker, "dev") for _ in range(5)]
    assert codes == [0, 0, 0, 0x9F, 0x9F]
    detector = detector_for(broker)
    assert (detector.bans, detector.refused) == (1, 2)


def test_a_311_client_that_flaps_is_refused_as_not_authorized() -> None:
    broker, _ = make_broker(**FLAPS)
    assert [_code(broker, "dev", level=4) for _ in range(4)] == [0, 0, 0, 5]


def test_other_identities_are_not_affected_by_a_flapping_one() -> None:
    broker, _ = make_broker(**FLAPS)
    for _ in range(4):
        _code(broker, "dev")
    assert _code(broker, "neighbour") == 0


def test_the_ban_ends_after_its_cool_down() -> None:
    broker, clock = make_broker(**FLAPS)
    for _ in range(4):
        _code(broker, "dev")
    clock.advance(29)
    assert _code(broker, "dev") == 0x9F
    clock.advance(1.5)
    assert _code(broker, "dev") == 0


def test_connects_spread_wider_than_the_window_never_trip_it() -> None:
    broker, clock = make_broker(**FLAPS)
    codes = []
    for _ in range(10):
        codes.append(_code(broker, "dev"))
        clock.advance(4)  # three per 12 s: under three per 10 s
    assert set(codes) == {0}


def test_flapping_detection_is_off_by_default_in_the_engine() -> None:
    broker, _ = make_broker()
    assert {_code(broker, "dev") for _ in range(50)} == {0}


def test_the_standalone_broker_takes_its_flapping_settings_from_the_command_line(start_broker) -> None:  # type: ignore[no-untyped-def]
    from tests.broker.conftest import RawClient

    broker = start_broker("--flap-max", "2", "--flap-window", "1m", "--flap-ban", "60s")
    codes = []
    for _ in range(3):
        client = RawClient(broker.port)
        codes.append(int(client.connect("looping").reason_code))
        client.sock.close()
    assert codes == [0, 0, 0x9F]
    other = RawClient(broker.port)
    assert int(other.connect("steady").reason_code) == 0
    other.sock.close()
