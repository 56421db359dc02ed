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
