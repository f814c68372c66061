"""Posting: what is sent to Slack's Web API, never silently lost. The poster
(retries, fallbacks), operation threads (the reporter), approval request messages,
registry announcements, on-call messages and answers to typed text."""
