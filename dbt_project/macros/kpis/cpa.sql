{% macro cpa(cost='cost', conversions='conversions') -%}
    {{ safe_divide(cost, conversions) }}
{%- endmacro %}
