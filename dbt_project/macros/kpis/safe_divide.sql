{#-
    numerator / denominator as numeric; NULL (not 0, not an error) when the denominator is 0 or NULL.
    trim_scale drops the trailing zeros PostgreSQL pads a numeric quotient with (0.019 comes back as
    0.01900000000000000000, zero as 0E-20), so a ratio carries only its significant digits.
-#}
{% macro safe_divide(numerator, denominator) -%}
    trim_scale(cast({{ numerator }} as numeric) / nullif(cast({{ denominator }} as numeric), 0))
{%- endmacro %}
