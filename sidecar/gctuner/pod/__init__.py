"""Every process of a pod following one desired state: the state directory, publishing, following, and the per-process singletons (``agent``)."""
