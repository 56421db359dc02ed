{#- Fails on every row where the column exceeds another column of the same row (rows with a NULL pass). -#}
{% test not_greater_than_column(model, column_name, other_column) %}

select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} > {{ other_column }}

{% endtest %}
