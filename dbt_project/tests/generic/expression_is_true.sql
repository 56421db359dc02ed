{#- Model-level: fails on every row where the SQL expression is false or NULL. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where ({{ expression }}) is not true

{% endtest %}
