"""All PostgreSQL I/O of the pipeline: SQL, COPY and transactions. No Dagster imports here."""
