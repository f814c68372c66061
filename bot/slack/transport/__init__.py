"""Transport: how a request reaches the bot. The HTTP door (size, signature and
team checked once, the body parsed once), Socket Mode, the payload checks both share, the
routes every mode serves (/healthz, /readyz, /metrics) and MLflow's webhook."""
