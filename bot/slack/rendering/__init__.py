"""Rendering: what the bot shows in Slack, and nothing else. Every text
(messages), mrkdwn made safe and short, Block Kit for reports, plans and the App Home,
and the action ids of the buttons it draws."""
