"""SQL access: schema, engine set-up, migrations and queries."""
