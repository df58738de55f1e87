"""PostgreSQL persistence of the users service."""
