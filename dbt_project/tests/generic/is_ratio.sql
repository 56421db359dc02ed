{#- A share or rate that cannot leave [0, 1] (ctr, cvr, elapsed share); NULL (zero denominator) passes. -#}
{% test is_ratio(model, column_name) %}

{{ test_value_between(model, column_name, min_value=0, max_value=1) }}

{% endtest %}
