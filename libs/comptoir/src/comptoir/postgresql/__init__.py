"""The services' database backend (`ENGINE: "comptoir.postgresql"`): Django's PostgreSQL backend
with a health check that needs no round trip to the server; see `base.DatabaseWrapper`."""
