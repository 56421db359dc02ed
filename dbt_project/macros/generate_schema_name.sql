{#
    Folders name their schema exactly (`core`, `analytics`, ...): the seed guide and BI tools query
    `core.dim_campaigns`, so dbt's default `<target schema>_<custom schema>` prefix is not wanted.
    With the var `shadow_prefix` (set by lakehouse.gold for write-audit-publish), the schemas readers query
    (`core`, `analytics`) are built as `<prefix>core` and `<prefix>analytics` instead: the build and its tests run
    there, and only a build whose tests all passed is published into the real schemas.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim in ('core', 'analytics') -%}
        {{ var('shadow_prefix', '') }}{{ custom_schema_name | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
