"""The model catalogue: the bundled list of models with limits and prices, extended by the config."""
