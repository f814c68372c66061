"""Admission: who may do what, and whether it may happen now. The Deployer
authorises, works out intents, applies the gates (limits, promotion order) and the
Locker, and records an operation; approvals, and the planner that runs the same checks
changing nothing."""
