"""Dataset and model card templates (``string.Template``, no Jinja) used by ``hf_coreset.integrations.hub``."""
