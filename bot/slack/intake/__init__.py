"""Intake: a request becomes a typed job. Listeners record it before the ack; the
job taker and the worker process take it from the state database; `Work` runs it through
the command table; user groups resolve who asks."""
