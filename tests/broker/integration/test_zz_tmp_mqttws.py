from __future__ import annotations
import time
from tests.broker.integration.wss_client import ws_client

def test_idle(platform, web, clients):
    platform.call("tenant_create", slug="tmpx")
    platform.call("user_create", username="tmpx", password="p-123456-x", tenants={"tmpx": "viewer"})
    s = platform.call("session_create", username="tmpx")
    w = clients(ws_client(web, s, "idle", tenant="tmpx")).connect()
    w.subscribe("a/b")
    t = time.monotonic()
    w.disconnected.wait(40)
    print("disconnected", w.disconnected.is_set(), time.monotonic() - t, w.disconnect_reason)
