"""Data layer: the registry of dataset formats (datasets/), extractors, the Parquet feature store,
shared checks, `grcf validate`, safe unpickling and the tensor cache. Imports only the base."""
