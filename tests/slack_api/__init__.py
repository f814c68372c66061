"""Test support for the Slack Web API: an emulator that slack_sdk clients talk to over HTTP."""
