"""Running petbox: settings, processes (embedded Redis, supervised workers), metrics,
provisioning, shadow-data removal, traffic recording and the shard count."""
