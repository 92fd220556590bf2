"""How people and programs reach the pipeline: the command line (`cli`), its `--direct` commands (`direct`), and
the GraphQL client other tools use (`client`, its documents in `client_queries`). No Dagster definitions here."""
