"""Network parts shared by several generator families (e.g. MAR's KL-16 VAE, also used by LINA/NOVA)."""
