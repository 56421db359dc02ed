{#-
    Model-level: the listed date columns never go backwards, e.g. [start_date, end_date]. Each neighbouring pair
    is compared where both are present, so an open-ended flight (NULL end_date) passes.
-#}
{% test dates_in_order(model, column_names) %}

select *
from {{ model }}
where
    {%- for earlier, later in zip(column_names[:-1], column_names[1:]) %}
    {{ 'or ' if not loop.first }}{{ earlier }} > {{ later }}
    {%- endfor %}

{% endtest %}
