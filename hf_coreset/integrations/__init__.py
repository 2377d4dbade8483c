"""Glue to the Hugging Face libraries: the ``Dataset.select_coreset`` accessor."""
