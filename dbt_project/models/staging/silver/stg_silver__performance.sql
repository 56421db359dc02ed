{{ silver_staging('performance') }}
