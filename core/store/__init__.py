"""Store: the state database, its migrations, models and repositories."""
