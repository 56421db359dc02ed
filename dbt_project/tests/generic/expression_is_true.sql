{#- Mirrors dbt_utils' expression_is_true test; the dbt Hub is unreachable here, so it is vendored as our own implementation. -#}
{#- Model-level: fails on every row where the SQL expression is false or NULL. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where ({{ expression }}) is not true

{% endtest %}
