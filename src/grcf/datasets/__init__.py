"""Dataset builders: turn an MMSA pickle or an MMSA raw folder into a grcf Parquet feature store."""
