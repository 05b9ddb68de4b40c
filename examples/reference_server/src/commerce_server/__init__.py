"""The reference server: commerce-core's gateway on uvicorn, configured from the environment."""
