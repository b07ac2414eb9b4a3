"""The malformed-packet corpus: every case in corpus/*.txt raises ProtocolError with the
reason code its line names (see corpus/README.md for the format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mqtt import ProtocolError, ReasonCode, StreamDecoder
from tests.broker.mqtt.mqtt_helpers import connected_decoder, fresh_decoder

CORPUS = Path(__file__).parent / "corpus"


def load_cases() -> list[pytest.ParameterSet]:
    cases = []
    for path in sorted(CORPUS.glob("*.txt")):
        level, server_side, fresh = 4, True, False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("@"):
                key, value = line[1:].split()
                if key == "level":
                    level = int(value)
                elif key == "side":
                    server_side = {"server": True, "client": False}[value]
                elif key == "state":
                    fresh = {"fresh": True, "connected": False}[value]
                else:
                    raise AssertionError(f"{path.name}:{number}: unknown directive {key}")
                continue
            wire, reason, why = line.split(" ", 2)
            assert why.startswith("# "), f"{path.name}:{number}: say why"
            cases.append(pytest.param(
                bytes.fromhex(wire), ReasonCode[reason], level, server_side, fresh,
                id=f"{path.stem}:{number} {why[2:]}",
            ))
    return cases


CASES = load_cases()


def test_the_corpus_has_a_file_for_every_packet_type() -> None:
    names = {p.stem for p in CORPUS.glob("*.txt")}
    assert names >= {
        "connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe",
        "suback", "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect", "auth",
    }


@pytest.mark.parametrize(("wire", "reason", "level", "server_side", "fresh"), CASES)
def test_each_corpus_case_is_refused_with_its_reason_code(
    wire: bytes, reason: ReasonCode, level: int, server_side: bool, fresh: bool
) -> None:
    decoder: StreamDecoder = (
        fresh_decoder(level, server_side) if fresh else connected_decoder(level, server_side)
    )
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(wire)
    assert caught.value.reason_code == reason, caught.value.message


@pytest.mark.parametrize(("wire", "reason", "level", "server_side", "fresh"), CASES)
def test_each_corpus_case_is_refused_however_it_is_split(
    wire: bytes, reason: ReasonCode, level: int, server_side: bool, fresh: bool
) -> None:
    decoder: StreamDecoder = (
        fresh_decoder(level, server_side) if fresh else connected_decoder(level, server_side)
    )
    with pytest.raises(ProtocolError) as caught:
        for index in range(len(wire)):
            decoder.feed(wire[index : index + 1])
    assert caught.value.reason_code == reason
