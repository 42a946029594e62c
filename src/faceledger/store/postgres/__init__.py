"""The server backend: PostgreSQL with pgvector, one partition per collection."""
