with

advertisers as (

    select * from {{ ref('dim_advertisers') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

performance as (

    select * from {{ ref('fct_performance') }}

),

advertiser_totals as (

    select
        advertisers.advertiser_id,
        count(distinct campaigns.campaign_id) as campaign_count,
        count(distinct campaigns.campaign_id) filter (where campaigns.is_active) as active_campaign_count,
        {{ performance_totals('performance') }}

    from advertisers
    -- Every advertiser gets a row, with zero totals and NULL KPIs before its first delivery.
    left join campaigns
        on advertisers.advertiser_id = campaigns.advertiser_id
    left join performance
        on campaigns.campaign_id = performance.campaign_id
    group by advertisers.advertiser_id

),

final as (

    select
        advertisers.advertiser_id,
        advertisers.advertiser_name,
        advertisers.industry,
        advertisers.country,
        advertiser_totals.campaign_count,
        advertiser_totals.active_campaign_count,
        advertiser_totals.impressions,
        advertiser_totals.clicks,
        advertiser_totals.conversions,
        advertiser_totals.cost,
        advertiser_totals.revenue,
        advertiser_totals.profit,
        {{ performance_kpis() }}

    from advertiser_totals
    inner join advertisers
        on advertiser_totals.advertiser_id = advertisers.advertiser_id

)

select * from final
