{% macro roi(revenue='revenue', cost='cost') -%}
    {{ safe_divide('(' ~ revenue ~ ') - (' ~ cost ~ ')', cost) }}
{%- endmacro %}
