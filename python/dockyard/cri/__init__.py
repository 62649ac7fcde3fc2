"""The Kubernetes CRI endpoint."""
