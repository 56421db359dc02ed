{#-
    Reads the silver source, not stg_silver__advertisers (a snapshot's history must not depend on a model that can
    be rebuilt or changed), with staging's column names: silver_lineage_columns() is the same rename.
    Config and tests: _snapshots.yml.
-#}
{% snapshot advertisers_snapshot %}

with

source as (

    select * from {{ source('silver', 'advertisers') }}

),

final as (

    select
        advertiser_id,
        advertiser_name,
        industry,
        country,
        account_manager,
        {{ silver_lineage_columns() }}

    from source

)

select * from final

{% endsnapshot %}
