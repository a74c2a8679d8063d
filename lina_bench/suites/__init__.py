"""Built-in suites (YAML files beside this module); ``lina-bench list suites`` shows them."""
