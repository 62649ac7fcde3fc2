"""Networks: the built-in bridge/host/none networks, user-defined bridges, IPAM,
endpoints, published ports and the embedded DNS (libnetwork's place in moby).

The kernel side (netlink, network namespaces, nftables) is the Rust crate
`rust/network`; this package keeps the records, the API's shapes and the rules.
"""
