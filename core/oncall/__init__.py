"""On-call: the watch window after a switch, the sentinel between rollouts,
alerts, status and overview, metrics, and the readiness checks."""
