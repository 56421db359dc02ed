-- As pacing is measured on the last performance date, each campaign's spend to date is its lifetime cost.
with

pacing as (

    select * from {{ ref('budget_pacing') }}

),

summary as (

    select * from {{ ref('campaign_performance_summary') }}

),

final as (

    select
        pacing.campaign_id,
        pacing.spend_to_date,
        summary.cost

    from pacing
    full outer join summary
        on pacing.campaign_id = summary.campaign_id
    where pacing.spend_to_date is distinct from summary.cost

)

select * from final
