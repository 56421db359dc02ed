with

performance as (

    select * from {{ ref('fct_performance') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

daily_channel_totals as (

    select
        performance.performance_date,
        campaigns.campaign_type,
        count(distinct performance.campaign_id) as campaign_count,
        {{ performance_totals('performance') }}

    from performance
    inner join campaigns
        on performance.campaign_id = campaigns.campaign_id
    group by
        performance.performance_date,
        campaigns.campaign_type

),

final as (

    select
        performance_date,
        campaign_type,
        campaign_count,
        impressions,
        clicks,
        conversions,
        cost,
        revenue,
        profit,
        {{ performance_kpis() }}

    from daily_channel_totals

)

select * from final
