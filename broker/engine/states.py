"""Connection states, shared by the connection and its CONNECT handling."""

NEW, AUTHENTICATING, CONNECTED, CLOSED = range(4)
