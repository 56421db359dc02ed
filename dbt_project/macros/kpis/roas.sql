{% macro roas(revenue='revenue', cost='cost') -%}
    {{ safe_divide(revenue, cost) }}
{%- endmacro %}
