"""Volumes: the `local` volume driver, anonymous volumes, and the mount points
(`-v`, `--mount`, `--tmpfs`, `--volumes-from`) that containers are created with.
"""
