"""The on-disk backup store: where sets live, how they are written, read and listed. No Dagster here."""
