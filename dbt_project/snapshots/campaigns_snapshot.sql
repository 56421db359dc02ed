{#-
    Reads the silver source, not stg_silver__campaigns (a snapshot's history must not depend on a model that can
    be rebuilt or changed), with staging's column names: silver_lineage_columns() is the same rename.
    Config and tests: _snapshots.yml.
-#}
{% snapshot campaigns_snapshot %}

with

source as (

    select * from {{ source('silver', 'campaigns') }}

),

final as (

    select
        campaign_id,
        advertiser_id,
        campaign_name,
        campaign_type,
        status,
        objective,
        start_date,
        end_date,
        budget_daily,
        budget_total,
        {{ silver_lineage_columns() }}

    from source

)

select * from final

{% endsnapshot %}
