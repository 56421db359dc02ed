with

performance as (

    select * from {{ ref('stg_silver__performance') }}

),

date_range as (

    select
        min(performance_date) as first_date,
        max(performance_date) as last_date

    from performance

),

spine as (

    select cast(spine_day as date) as date_day

    from date_range
    -- No performance at all gives NULL bounds and therefore no rows.
    cross join lateral generate_series(first_date, last_date, interval '1 day') as spine_day

),

final as (

    select
        date_day,
        cast(extract(year from date_day) as integer) as calendar_year,
        cast(extract(quarter from date_day) as integer) as calendar_quarter,
        cast(extract(month from date_day) as integer) as calendar_month,
        to_char(date_day, 'FMMonth') as month_name,
        cast(extract(isoyear from date_day) as integer) as iso_year,
        cast(extract(week from date_day) as integer) as iso_week,
        cast(extract(isodow from date_day) as integer) as iso_day_of_week,
        to_char(date_day, 'FMDay') as day_name,
        extract(isodow from date_day) in (6, 7) as is_weekend

    from spine

)

select * from final
