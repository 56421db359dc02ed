with

advertisers as (

    select * from {{ ref('stg_silver__advertisers') }}

),

final as (

    select
        advertiser_id,
        advertiser_name,
        industry,
        country,
        account_manager

    from advertisers

)

select * from final
