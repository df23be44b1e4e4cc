"""The operator's own API names: the GCPolicy resource it watches and writes."""

GROUP = "gctuner.dev"
VERSION = "v1alpha1"
PLURAL = "gcpolicies"
