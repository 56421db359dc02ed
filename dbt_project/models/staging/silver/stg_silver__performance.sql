with

source as (

    select * from {{ source('silver', 'performance') }}

),

final as (

    select
        performance_id,
        campaign_id,
        date as performance_date,
        impressions,
        clicks,
        conversions,
        cost,
        revenue,
        {{ silver_lineage_columns() }}

    from source

)

select * from final
