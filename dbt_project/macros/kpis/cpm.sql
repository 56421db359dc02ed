{% macro cpm(cost='cost', impressions='impressions') -%}
    {{ safe_divide('1000 * (' ~ cost ~ ')', impressions) }}
{%- endmacro %}
