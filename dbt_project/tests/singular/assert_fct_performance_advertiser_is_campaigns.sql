-- The fact's advertiser key is its campaign's current advertiser: a campaign moved to another advertiser is
-- re-delivered, so the watermark reloads its fact rows.
with

fact as (

    select * from {{ ref('fct_performance') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

final as (

    select
        fact.performance_id,
        fact.advertiser_id as fact_advertiser_id,
        campaigns.advertiser_id as campaign_advertiser_id

    from fact
    inner join campaigns
        on fact.campaign_id = campaigns.campaign_id
    where fact.advertiser_id <> campaigns.advertiser_id

)

select * from final
