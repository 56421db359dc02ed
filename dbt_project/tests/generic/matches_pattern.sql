{#- Fails on every row where the column does not match the POSIX regular expression (NULL passes). -#}
{% test matches_pattern(model, column_name, pattern) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} !~ '{{ pattern }}'

{% endtest %}
