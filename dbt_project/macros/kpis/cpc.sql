{% macro cpc(cost='cost', clicks='clicks') -%}
    {{ safe_divide(cost, clicks) }}
{%- endmacro %}
