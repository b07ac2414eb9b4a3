"""What every app's REST API shares: authentication by API key, the tenant-access helper,
one error shape, cursor pagination, throttling, body limits and the URL assembly."""
