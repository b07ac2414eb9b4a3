"""The broker engine: sessions, routing, retained messages, wills; no sockets, no Django."""
