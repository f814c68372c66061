"""Execution: the Runner takes recorded operations under leases and runs their
steps through Rollouts on a target, resumable from what was recorded."""
