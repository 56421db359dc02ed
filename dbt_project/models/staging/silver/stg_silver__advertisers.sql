{{ silver_staging('advertisers') }}
