{% macro cvr(conversions='conversions', clicks='clicks') -%}
    {{ safe_divide(conversions, clicks) }}
{%- endmacro %}
