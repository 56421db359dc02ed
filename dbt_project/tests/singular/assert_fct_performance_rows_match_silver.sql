-- Row by row, fct_performance equals the current silver performance: no key missing on either side and no
-- measure different, so row counts and totals agree too. It names the rows a missed late correction left stale.
-- The only owner of this invariant: neither a totals test nor a Soda gold check repeats it.
with

silver as (

    select * from {{ ref('stg_silver__performance') }}

),

fact as (

    select * from {{ ref('fct_performance') }}

),

final as (

    select
        coalesce(silver.performance_id, fact.performance_id) as performance_id,
        silver.performance_id is null as is_missing_in_silver,
        fact.performance_id is null as is_missing_in_fact

    from silver
    full outer join fact
        on silver.performance_id = fact.performance_id
    where
        (silver.campaign_id, silver.performance_date, silver.impressions, silver.clicks, silver.conversions,
            silver.cost, silver.revenue)
        is distinct from
        (fact.campaign_id, fact.performance_date, fact.impressions, fact.clicks, fact.conversions,
            fact.cost, fact.revenue)

)

select * from final
