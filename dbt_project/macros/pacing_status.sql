{#-
    under / on_track / over from a pacing index (share of budget spent / share of flight elapsed).
    The thresholds are project vars (dbt_project.yml) so they live in one place and unit tests can pin them.
-#}
{% macro pacing_status(pacing_index) -%}
    case
        when {{ pacing_index }} is null then null
        when {{ pacing_index }} < {{ var('pacing_under_below') }} then 'under'
        when {{ pacing_index }} > {{ var('pacing_over_above') }} then 'over'
        else 'on_track'
    end
{%- endmacro %}
