"""Back up, verify, list, truncate and restore LangChain PGVector stores, orchestrated by Dagster."""
