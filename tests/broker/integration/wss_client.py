"""Browser stand-ins for the web service's /mqtt endpoint: a portal sign-in over HTTP, a raw
WebSocket client (wsproto) with control over every frame, and paho-mqtt over WebSockets."""

from __future__ import annotations

import http.cookiejar
import socket
import time
import urllib.parse
import urllib.request
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from broker.mqtt import Connect, Packet, ProtocolError, StreamDecoder, encode
from tests.broker.conftest import Client
from tests.broker.integration.platform_harness import PlatformWeb


class Browser:
    """A cookie jar signed in through the portal's login form, as a browser would be."""

    def __init__(self, web: PlatformWeb) -> None:
        self.web = web
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def _post(self, path: str, fields: dict[str, str]) -> int:
        fields = dict(fields, csrfmiddlewaretoken=self.cookie("csrftoken") or "")
        request = urllib.request.Request(
            self.web.url + path, data=urllib.parse.urlencode(fields).encode(),
            headers={"Origin": self.web.url, "Referer": self.web.url + path})
        with self.opener.open(request, timeout=10) as response:
            return int(response.status)

    def login(self, username: str, password: str) -> str:
        """Sign in with the login form; returns the session key (the sessionid cookie)."""
        self.opener.open(self.web.url + "/accounts/login/", timeout=10).read()
        self._post("/accounts/login/", {"username": username, "password": password})
        session = self.cookie("sessionid")
        assert session, "the login form did not sign in"
        return session

    def logout(self) -> None:
        self._post("/accounts/logout/", {})


class WsMqtt:
    """A raw WebSocket to /mqtt: the handshake's outcome, frames out, MQTT packets in."""

    def __init__(self, web: PlatformWeb, *, session: str | None = None, origin: str | None = "",
                 subprotocols: tuple[str, ...] = ("mqtt",), level: int = 5, path: str = "/mqtt") -> None:
        self.level = level
        self.sock = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = []
        if origin == "":
            origin = web.url
        if origin is not None:
            headers.append((b"Origin", origin.encode()))
        if session is not None:
            headers.append((b"Cookie", f"sessionid={session}".encode()))
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{web.port}", target=path,
                                               subprotocols=list(subprotocols), extra_headers=headers)))
        self.status = 0  # 101 when accepted, the HTTP status when refused
        self.subprotocol: str | None = None
        self.decoder = StreamDecoder(server_side=False, protocol_level=level)
        self.packets: list[Packet] = []
        self.close_code: int | None = None
        self.undecodable: ProtocolError | None = None
        self.eof = False
        while not self.status:
            if not self._read(5.0):
                break

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def _read(self, timeout: float) -> bool:
        """Read once and process the events; False at the end of the stream or on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.status, self.subprotocol = 101, event.subprotocol
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, RejectData):
                pass
            elif isinstance(event, BytesMessage):
                try:
                    self.packets.extend(self.decoder.feed(bytes(event.data)))
                except ProtocolError as error:  # e.g. a 3.1.1 refusal to a CONNECT of no known version
                    self.undecodable = error
            elif isinstance(event, TextMessage):
                raise AssertionError(f"a text frame from /mqtt: {event.data!r}")
            elif isinstance(event, Ping):
                self._send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                if self.ws.state.name == "REMOTE_CLOSING":
                    self._send(self.ws.send(event.response()))
        return bool(data)

    def frame(self, data: bytes | Packet) -> None:
        """One binary frame holding `data` (raw bytes, or a packet to encode)."""
        if not isinstance(data, bytes | bytearray):
            data = encode(data, self.level)
        if self.ws.state is not ConnectionState.OPEN:
            return  # closed by the server already: nothing more can be sent
        self._send(self.ws.send(BytesMessage(data=bytes(data))))

    def text(self, data: str) -> None:
        self._send(self.ws.send(TextMessage(data=data)))

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True  # the server closed the connection already

    def connect(self, tenant: str | None = None, client_id: str = "", password: bytes | None = None,
                **fields: Any) -> Packet | None:
        self.frame(Connect(protocol_level=self.level, client_id=client_id, username=tenant,
                           password=password, **fields))
        return self.next()

    def next(self, timeout: float = 5.0) -> Packet | None:
        """The next MQTT packet, or None when the connection closed (or nothing came)."""
        deadline = time.monotonic() + timeout
        while not self.packets:
            left = deadline - time.monotonic()
            if (left <= 0 or self.eof or not self._read(left)) and not self.packets:
                return None
        return self.packets.pop(0)

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection within `timeout` (packets are kept)."""
        deadline = time.monotonic() + timeout
        while not self.eof and self.close_code is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._read(left)
        return True

    def close(self) -> None:
        self.sock.close()


class PahoWs(Client):
    """paho-mqtt over WebSockets, keeping daphne from pinging it.

    paho answers a WebSocket ping with an unmasked pong, which a server must refuse (RFC 6455
    section 5.1), so daphne, which pings after 20 seconds without a frame, would drop it; a
    keep-alive under 20 seconds sends a PINGREQ frame before that.
    """

    def connect(self, *args: Any, keepalive: int = 10, **kwargs: Any) -> Client:
        return super().connect(*args, keepalive=keepalive, **kwargs)


def ws_client(web: PlatformWeb, session: str | None, client_id: str = "", *, version: int = 5,
              tenant: str | None = None, origin: str | None = None) -> Client:
    """A paho-mqtt client for /mqtt over WebSockets with the session cookie (not connected)."""
    client = PahoWs(web.port, client_id, version, transport="websockets")
    headers = {"Origin": origin or web.url}
    if session is not None:
        headers["Cookie"] = f"sessionid={session}"
    client.client.ws_set_options(path="/mqtt", headers=headers)
    if tenant is not None:
        client.client.username_pw_set(tenant)
    return client
