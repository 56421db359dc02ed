"""Silver: typed, validated, deduplicated tables and their quarantine.

``validation`` turns the declared rules into Spark expressions, ``transforms`` classifies bronze rows (pure),
and ``layer`` reads bronze, writes silver and quarantine to the lake and PostgreSQL, and reconciles the counts.
"""
