{{ silver_staging('campaigns') }}
