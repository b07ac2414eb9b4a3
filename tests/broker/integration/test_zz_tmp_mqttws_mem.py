from __future__ import annotations
import time, gc
import pytest
from tests.broker.integration.wss_client import WsMqtt
from tests.broker.integration.platform_harness import PlatformWeb

class BigWeb(PlatformWeb):
    def env(self):
        return dict(super().env(), ROOST_MQTT_WS_MAX_CONNECTIONS="2000")

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

@pytest.mark.parametrize("mode", ["handshake", "relay", "relay2"])
def test_mem(platform, broker, mode):
    try:
        platform.call("tenant_create", slug="memx")
        platform.call("user_create", username="memx", password="p-123456-x", tenants={"memx": "viewer"})
    except Exception:
        pass
    s = platform.call("session_create", username="memx")
    web = BigWeb(platform, broker).start()
    try:
        warm = [WsMqtt(web, session=s) for _ in range(20)]
        for x in warm: x.connect("memx", client_id=f"w{id(x)}")
        for x in warm: x.close()
        time.sleep(2)
        w0, b0 = rss(web.proc.pid), rss(broker.proc.pid)
        M = 500
        idle = []
        for i in range(M):
            x = WsMqtt(web, session=s)
            if mode != "handshake":
                assert x.connect("memx", client_id=f"idle-{i}", keep_alive=0).reason_code == 0
            idle.append(x)
        time.sleep(3 if mode != "relay2" else 9)
        w1, b1 = rss(web.proc.pid), rss(broker.proc.pid)
        print(f"\n{mode}: {M}: web +{(w1-w0)/M:.1f} KiB/conn, broker +{(b1-b0)/M:.1f} KiB/conn")
        for x in idle: x.close()
    finally:
        web.stop()
