{#-
    The seven KPI columns over summed measures: call it after aggregating, so every KPI is a ratio of sums
    (never an average of per-row ratios). Expects columns impressions, clicks, conversions, cost, revenue.
-#}
{% macro performance_kpis() -%}
        {{ ctr() }} as ctr,
        {{ cvr() }} as cvr,
        {{ cpc() }} as cpc,
        {{ cpm() }} as cpm,
        {{ cpa() }} as cpa,
        {{ roas() }} as roas,
        {{ roi() }} as roi
{%- endmacro %}
