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
        _batch_id as batch_id,
        _source_file as source_file,
        _ingestion_timestamp as ingested_at,
        _silver_processed_at as silver_processed_at

    from source

)

select * from final
