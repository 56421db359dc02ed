{#- Config and tests: _snapshots.yml. The select is stg_silver__advertisers's, reading the source (see silver_staging). -#}
{% snapshot advertisers_snapshot %}

{{ silver_staging('advertisers') }}

{% endsnapshot %}
