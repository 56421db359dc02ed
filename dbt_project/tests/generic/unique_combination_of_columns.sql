{#- Mirrors dbt_utils' unique_combination_of_columns test; the dbt Hub is unreachable here, so it is vendored as our own implementation. -#}
{#- Model-level: the listed columns together identify a row (the grain of the model). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select {{ combination_of_columns | join(', ') }}, count(*) as rows_per_key
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
