"""The real node: containerd, runc, CNI and the real kubelet, controller-manager and scheduler."""
