-- dim_dates runs from the first to the last performance date with one row per day and no gaps.
with

dates as (

    select * from {{ ref('dim_dates') }}

),

performance as (

    select * from {{ ref('stg_silver__performance') }}

),

spine as (

    select
        min(date_day) as first_day,
        max(date_day) as last_day,
        count(*) as day_count

    from dates

),

expected as (

    select
        min(performance_date) as first_day,
        max(performance_date) as last_day,
        coalesce(max(performance_date) - min(performance_date) + 1, 0) as day_count

    from performance

),

final as (

    select
        spine.*,
        expected.first_day as expected_first_day,
        expected.last_day as expected_last_day,
        expected.day_count as expected_day_count

    from spine
    cross join expected
    where (spine.first_day, spine.last_day, spine.day_count)
        is distinct from (expected.first_day, expected.last_day, expected.day_count)

)

select * from final
