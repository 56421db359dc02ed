with

campaigns as (

    select * from {{ ref('stg_silver__campaigns') }}

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
        -- Both ends count: a flight from the 1st to the 31st runs 31 days. NULL while open-ended.
        end_date - start_date + 1 as flight_length_days,
        budget_daily,
        budget_total,
        status = 'Active' as is_active

    from campaigns

)

select * from final
