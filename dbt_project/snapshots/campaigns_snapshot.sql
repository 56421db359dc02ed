{#- Config and tests: _snapshots.yml. The select is stg_silver__campaigns's, reading the source (see silver_staging). -#}
{% snapshot campaigns_snapshot %}

{{ silver_staging('campaigns') }}

{% endsnapshot %}
