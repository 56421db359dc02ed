"""Adapters to the outside world, one system per module: ``spark`` (the session) and ``jars`` (its connectors),
``lake`` (Delta tables) and ``objectstore`` (S3 buckets), ``warehouse`` (PostgreSQL connections and DDL),
``loader`` and ``pgcopy`` (moving DataFrames into PostgreSQL). They own I/O and atomicity; layers call them."""
