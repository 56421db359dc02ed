"""Adapters to the outside world, one system per module: ``spark`` (the session) and ``jars`` (its connectors),
``lake`` (Delta tables) and ``objectstore`` (S3 buckets), ``warehouse`` (PostgreSQL connections and DDL),
``loader``, ``staging``, ``pgcopy`` and ``pgbinary`` (moving DataFrames into PostgreSQL: binary COPY into private
staging, verified atomic publish), ``locks`` (one run at a time on the lake and the warehouse). They own I/O and
atomicity; layers call them."""
