"""Bronze: every landing record, verbatim as text, with ingestion metadata, in Delta and in PostgreSQL.

``landing`` finds and parses landing files (plain Python), ``parse`` runs that parser on the executors,
``transforms`` adds the metadata (pure), ``ingest_log`` records batches, and ``layer`` ingests a batch.
"""
