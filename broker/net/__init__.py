"""asyncio transports for the broker: TCP and TLS listeners, one Protocol per connection."""
