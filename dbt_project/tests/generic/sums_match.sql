{#-
    Model-level reconciliation: the model's sum of each measure equals compare_model's (and, with
    compare_row_count, so do the row counts). On a mismatch both sides' totals are returned.
-#}
{% test sums_match(model, compare_model, measures, compare_row_count=false) %}

{%- set columns = (['row_count'] if compare_row_count else []) + measures -%}

with

{% for side, relation in [('model_totals', model), ('compare_totals', compare_model)] %}
{{ side }} as (

    select
        count(*) as row_count
        {%- for measure in measures %},
        coalesce(sum({{ measure }}), 0) as {{ measure }}
        {%- endfor %}

    from {{ relation }}

),
{% endfor %}

mismatch as (

    select 1 as found

    from model_totals
    cross join compare_totals
    where ({{ 'model_totals.' ~ columns | join(', model_totals.') }})
        is distinct from ({{ 'compare_totals.' ~ columns | join(', compare_totals.') }})

)

select 'model' as side, model_totals.* from model_totals where exists (select 1 from mismatch)
union all
select 'compare_model' as side, compare_totals.* from compare_totals where exists (select 1 from mismatch)

{% endtest %}
