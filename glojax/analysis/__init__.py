from glojax.analysis.phenotype import binary_logits, binary_phenotype, plot_binary_phenotypes  # noqa: F401
