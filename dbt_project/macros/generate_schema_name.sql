{#
    Folders name their schema exactly (`core`, `analytics`, ...): the seed guide and BI tools query
    `core.dim_campaigns`, so dbt's default `<target schema>_<custom schema>` prefix is not wanted.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
