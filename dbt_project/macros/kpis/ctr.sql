{% macro ctr(clicks='clicks', impressions='impressions') -%}
    {{ safe_divide(clicks, impressions) }}
{%- endmacro %}
