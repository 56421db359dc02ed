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
