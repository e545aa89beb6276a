"""Hot state in Redis: the action pipeline (load, rule, one Lua commit), its keys and
scripts, shared aggregates and their two-commit protocol, limited stock and the value
tier, and the Redis clients (one node or a Cluster) they run on."""
