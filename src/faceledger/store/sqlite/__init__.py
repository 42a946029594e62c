"""The embedded backend: one SQLite file in the data folder."""
