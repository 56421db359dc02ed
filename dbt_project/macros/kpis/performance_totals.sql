{#-
    The summed measures of fct_performance rows, 0 (not NULL) when a group has no performance rows, e.g. a
    campaign left-joined to its delivery before its first day. `relation` is the alias of the performance rows.
    Counts stay bigint and money keeps its two decimals (PostgreSQL's sum() would widen both to bare numeric).
-#}
{% macro performance_totals(relation) -%}
        cast(coalesce(sum({{ relation }}.impressions), 0) as bigint) as impressions,
        cast(coalesce(sum({{ relation }}.clicks), 0) as bigint) as clicks,
        cast(coalesce(sum({{ relation }}.conversions), 0) as bigint) as conversions,
        cast(coalesce(sum({{ relation }}.cost), 0) as numeric(18, 2)) as cost,
        cast(coalesce(sum({{ relation }}.revenue), 0) as numeric(18, 2)) as revenue,
        cast(coalesce(sum({{ relation }}.profit), 0) as numeric(18, 2)) as profit
{%- endmacro %}
