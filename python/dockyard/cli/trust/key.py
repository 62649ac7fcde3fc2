"""`trust key generate` and `trust key load`: signing keys into the key store
(`<config>/trust/private`), public keys beside the caller."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from ..common import fail
from .shared import NAME_RULE, PASSPHRASES, VALID_NAME, arity, go_os_error, key_store

def key_generate(args: Optional[List[str]] = typer.Argument(None, metavar="NAME"),
                 dir: str = typer.Option("", "--dir", help="Directory to generate key in, "
                                         "defaults to current directory")) -> None:
    """Generate and load a signing key-pair"""
    from ...distribution.trust.errors import PassphraseError
    from ...distribution.trust.keys import PrivateKey, public_pem

    [name] = arity("key generate", args, "NAME", exactly=1)
    target = dir or os.getcwd()
    if not VALID_NAME.fullmatch(name):
        fail(f'key name "{name}" {NAME_RULE}')
    if not os.path.exists(target):
        fail(f'public key path does not exist: "{target}"')
    pub_path = os.path.join(target, f"{name}.pub")
    if os.path.exists(pub_path):
        fail(f'public key file already exists: "{pub_path}"')
    print(f"Generating key for {name}...", flush=True)
    key = PrivateKey.generate()
    try:
        key_store().add(key, name)
    except PassphraseError as e:
        sys.stdout.write(str(e))
        sys.stdout.flush()
        fail(f"failed to generate key for {name}: {e}")
    try:
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(public_pem(key.public, name))
    except OSError as e:
        fail(f"failed to write public key to {pub_path}: {e.strerror}")
    print("Successfully generated and loaded private key. Corresponding public key available:",
          pub_path)


def key_load(args: Optional[List[str]] = typer.Argument(None, metavar="KEYFILE"),
             name: str = typer.Option("signer", "--name", help="Name for the loaded key")) -> None:
    """Load a private key file for signing"""
    from ...distribution.trust.errors import TrustError
    from ...distribution.trust.keys import pem_decode, parse_private_pem, private_key_role

    [keyfile] = arity("key load", args, "[OPTIONS] KEYFILE", exactly=1)
    if name and not VALID_NAME.fullmatch(name):
        fail(f'key name "{name}" {NAME_RULE}')
    print(f'Loading key from "{keyfile}"...', flush=True)
    try:
        st = os.stat(keyfile)
        if st.st_mode & 0o077:
            fail(f"refusing to load key from {keyfile}: private key file {keyfile} must not "
                 "be readable or writable by others")
        with open(keyfile, "rb") as f:
            raw = f.read()
    except OSError as e:
        op = "open" if isinstance(e, PermissionError) else "stat"
        fail(f"refusing to load key from {keyfile}: {go_os_error(op, keyfile, e)}")
    if private_key_role(raw) is None:
        fail(f"error importing key from {keyfile}: provided file {keyfile} is not a supported "
             "private key - to add a signer's public key use docker trust signer add")
    block = pem_decode(raw)
    encrypted = block is not None and (block.type == "ENCRYPTED PRIVATE KEY"
                                       or "DEK-Info" in block.headers)
    try:
        key = parse_private_pem(raw, PASSPHRASES)
    except (ValueError, TrustError):
        fail(f"error importing key from {keyfile}: cannot load key from provided file "
             f"{keyfile}: could not decrypt key")
    # docker 28 decrypts an encrypted key file to bare DER, in which its importer
    # then finds no PEM block: it reports success and stores nothing. So do we.
    if not (encrypted and block is not None and "path" not in block.headers):
        # notary's ImportKeys: --name only where the file names no role itself
        headers = block.headers if block is not None else {}
        try:
            key_store().add(key, headers.get("role") or name or "signer", headers.get("gun", ""))
        except TrustError as e:
            fail(f"error importing key from {keyfile}: {e}")
    print("Successfully imported key from", keyfile)
