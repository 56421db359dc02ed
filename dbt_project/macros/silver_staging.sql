{#-
    The select that stages a silver table: its columns under staging's names, lineage included
    (silver_lineage_columns). It is the staging model stg_silver__<table>, and the body of <table>'s snapshot, which
    reads the source itself rather than the model (a snapshot's history must not depend on a model that can be
    rebuilt or changed): one column list serves both. tests/unit/test_gold_contracts.py keeps it equal to the
    silver contract.
-#}
{% macro silver_staging(table) -%}
{%- set columns = {
    "advertisers": ["advertiser_id", "advertiser_name", "industry", "country", "account_manager"],
    "campaigns": [
        "campaign_id", "advertiser_id", "campaign_name", "campaign_type", "status", "objective", "start_date",
        "end_date", "budget_daily", "budget_total",
    ],
    "performance": [
        "performance_id", "campaign_id", "date as performance_date", "impressions", "clicks", "conversions", "cost",
        "revenue",
    ],
}[table] -%}
with

source as (

    select * from {{ source('silver', table) }}

),

final as (

    select
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        {{ silver_lineage_columns() }}

    from source

)

select * from final
{%- endmacro %}
