"""Background work a host runs beside the HTTP workers: leases, periodic passes,
reconciliation, retention, reminders, webhooks, leaderboards and experiment notices."""
