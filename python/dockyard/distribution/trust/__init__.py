"""Docker Content Trust: Notary v1 (TUF) repositories as docker's CLI keeps and
publishes them. canonical.py (the JSON that gets signed), keys.py (ECDSA keys,
root certificates, the encrypted key files under `<config>/trust/private`),
metadata.py (signed envelopes, roles, hashes), repository.py (a GUN's metadata:
fetched and verified from a notary server, cached under `<config>/trust/tuf`,
changed and published) over server.py (the notary server's HTTP API)."""
