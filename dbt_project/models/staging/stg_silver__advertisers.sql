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
        _batch_id as batch_id,
        _source_file as source_file,
        _ingestion_timestamp as ingested_at,
        _silver_processed_at as silver_processed_at

    from source

)

select * from final
