with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

advertisers as (

    select * from {{ ref('dim_advertisers') }}

),

performance as (

    select * from {{ ref('fct_performance') }}

),

campaign_totals as (

    select
        campaigns.campaign_id,
        min(performance.performance_date) as first_performance_date,
        max(performance.performance_date) as last_performance_date,
        count(performance.performance_id) as performance_days,
        {{ performance_totals('performance') }}

    from campaigns
    -- Every campaign gets a row: one that has not delivered yet shows zero totals and NULL KPIs.
    left join performance
        on campaigns.campaign_id = performance.campaign_id
    group by campaigns.campaign_id

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.advertiser_id,
        advertisers.advertiser_name,
        campaigns.campaign_type,
        campaigns.status,
        campaigns.objective,
        campaigns.start_date,
        campaigns.end_date,
        campaign_totals.first_performance_date,
        campaign_totals.last_performance_date,
        campaign_totals.performance_days,
        campaign_totals.impressions,
        campaign_totals.clicks,
        campaign_totals.conversions,
        campaign_totals.cost,
        campaign_totals.revenue,
        campaign_totals.profit,
        {{ performance_kpis() }}

    from campaign_totals
    inner join campaigns
        on campaign_totals.campaign_id = campaigns.campaign_id
    inner join advertisers
        on campaigns.advertiser_id = advertisers.advertiser_id

)

select * from final
