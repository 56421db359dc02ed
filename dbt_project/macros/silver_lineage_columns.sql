{#-
    The lineage columns every silver table carries (lakehouse.contracts.LINEAGE), renamed for staging: no
    leading underscore, `<event>_at` for the timestamps.
-#}
{% macro silver_lineage_columns() -%}
        _batch_id as batch_id,
        _source_file as source_file,
        _ingestion_timestamp as ingested_at,
        _silver_processed_at as silver_processed_at
{%- endmacro %}
