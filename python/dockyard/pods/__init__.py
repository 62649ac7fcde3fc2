"""Pods: groups of containers sharing namespaces, as the Kubernetes CRI asks
for them. A pod is a record of its own (not a hidden container) whose
network, IPC and UTS namespaces are pinned as files (as `ip netns add` and
CRI-O's pinns do): no pause process holds them."""
