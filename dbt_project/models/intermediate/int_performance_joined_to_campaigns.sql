with

performance as (

    select * from {{ ref('stg_silver__performance') }}

),

campaigns as (

    select * from {{ ref('stg_silver__campaigns') }}

),

final as (

    select
        performance.performance_id,
        performance.campaign_id,
        campaigns.advertiser_id,
        performance.performance_date,
        performance.impressions,
        performance.clicks,
        performance.conversions,
        performance.cost,
        performance.revenue,
        -- A fact row is built from its performance row and its campaign (for advertiser_id), so it is new
        -- whenever either was (re-)delivered. greatest() skips the NULL of a missing campaign.
        greatest(performance.ingested_at, campaigns.ingested_at) as source_ingested_at,
        performance.batch_id

    from performance
    -- A left join: a performance row without its campaign must fail the fact's tests, not vanish from totals.
    left join campaigns
        on performance.campaign_id = campaigns.campaign_id

)

select * from final
