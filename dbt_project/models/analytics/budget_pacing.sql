with

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

performance as (

    select * from {{ ref('fct_performance') }}

),

as_of as (

    -- Pacing is measured on the last day with delivered performance, not on today's date, so the mart is
    -- reproducible and meaningful on historical data.
    select max(performance_date) as as_of_date

    from performance

),

campaign_spend as (

    select
        campaigns.campaign_id,
        cast(coalesce(sum(performance.cost), 0) as numeric(18, 2)) as spend_to_date

    from campaigns
    left join performance
        on campaigns.campaign_id = performance.campaign_id
    group by campaigns.campaign_id

),

flight_progress as (

    select
        campaigns.campaign_id,
        as_of.as_of_date,
        -- Days of the flight up to and including the as-of day: 0 before the start, the whole flight after the
        -- end (least() skips the NULL length of an open-ended flight, which keeps counting).
        greatest(0, least(as_of.as_of_date - campaigns.start_date + 1, campaigns.flight_length_days))
            as elapsed_days

    from campaigns
    cross join as_of

),

shares as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.advertiser_id,
        campaigns.status,
        campaigns.start_date,
        campaigns.end_date,
        campaigns.flight_length_days,
        campaigns.budget_total,
        flight_progress.as_of_date,
        flight_progress.elapsed_days,
        campaign_spend.spend_to_date,
        -- numeric(14, 2) - numeric(18, 2) is a bare numeric in PostgreSQL; the contract says numeric(18, 2).
        cast(campaigns.budget_total - campaign_spend.spend_to_date as numeric(18, 2)) as budget_remaining,
        {{ safe_divide('campaign_spend.spend_to_date', 'campaigns.budget_total') }} as budget_spent_share,
        {{ safe_divide('flight_progress.elapsed_days', 'campaigns.flight_length_days') }} as flight_elapsed_share

    from campaigns
    inner join campaign_spend
        on campaigns.campaign_id = campaign_spend.campaign_id
    inner join flight_progress
        on campaigns.campaign_id = flight_progress.campaign_id

),

pacing as (

    select
        *,
        {{ safe_divide('budget_spent_share', 'flight_elapsed_share') }} as pacing_index

    from shares

),

final as (

    select
        *,
        {{ pacing_status('pacing_index') }} as pacing_status

    from pacing

)

select * from final
