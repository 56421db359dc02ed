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
        _batch_id as batch_id,
        _source_file as source_file,
        _ingestion_timestamp as ingested_at,
        _silver_processed_at as silver_processed_at

    from source

)

select * from final
