{#-
    Model-level, for a snapshot: its current versions (dbt_valid_to NULL) hold exactly compare_model's rows on
    the key and the listed columns. Returns the keys whose current version is missing, extra or different.
-#}
{% test current_versions_match(model, compare_model, unique_key, columns) %}

{%- set compared = [unique_key] + columns -%}

with

current_versions as (

    select * from {{ model }} where dbt_valid_to is null

),

expected as (

    select * from {{ compare_model }}

),

final as (

    select
        current_versions.{{ unique_key }} as snapshot_key,
        expected.{{ unique_key }} as expected_key

    from current_versions
    full outer join expected
        on current_versions.{{ unique_key }} = expected.{{ unique_key }}
    where ({{ 'current_versions.' ~ compared | join(', current_versions.') }})
        is distinct from ({{ 'expected.' ~ compared | join(', expected.') }})

)

select * from final

{% endtest %}
