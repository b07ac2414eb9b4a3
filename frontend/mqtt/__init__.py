"""MQTT over WebSocket for signed-in browsers at /mqtt (docs/dashboard.md).

origin.py   the exact Origin check, before anything else
flow.py     flow control on daphne's socket to the browser
consumer.py the Channels consumer: handshake, CONNECT, admission, endings
access.py   who a session may act as, and whether it still may (database)
limits.py   per-user connection slots and PUBLISH rate (cache)
relay.py    the byte pipe to the broker's bridge listener
walker.py   packet boundaries from fixed headers alone
metrics.py  what /metrics shows about all of it
"""
