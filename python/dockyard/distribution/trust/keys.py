"""Keys as notary knows them: public keys with TUF key IDs (the SHA-256 of the
key's canonical JSON), ECDSA P-256 private keys that sign (raw r||s over the
SHA-256 of the message, method "ecdsa"), root keys carried in self-signed
certificates ("ecdsa-x509", CN = the GUN), and the key store: one PEM file per
key, `<trust>/private/<key ID>.key`, encrypted PKCS #8 with `role` and `gun`
headers, as docker's CLI writes them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import canonical, der
from .errors import KeyNotFound, PassphraseError, ValidationError

ECDSA, ECDSA_X509, ED25519, RSA, RSA_X509 = "ecdsa", "ecdsa-x509", "ed25519", "rsa", "rsa-x509"
PBKDF2_ITERATIONS = 2048  # notary's

# notary's PassRetriever: (key name, alias, creating, attempt) -> (passphrase, give up);
# PassphraseError for a failed attempt (the caller decides whether to ask again)
Passphrases = Callable[[str, str, bool, int], "tuple[str, bool]"]
MAX_ATTEMPTS = 10


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class PublicKey:
    keytype: str
    public: bytes  # PKIX DER (ecdsa, rsa), PEM certificate (*-x509), 32 raw bytes (ed25519)

    def to_json(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": b64(self.public)}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PublicKey:
        try:
            return cls(str(d["keytype"]), base64.b64decode(d["keyval"]["public"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValidationError(f"invalid key: {e}") from None

    @property
    def id(self) -> str:
        return hashlib.sha256(canonical.encode(self.to_json())).hexdigest()

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.public)

    def plain(self) -> PublicKey:
        """The key itself, out of its certificate for the x509 types."""
        if self.keytype in (ECDSA_X509, RSA_X509):
            der_ = self.certificate().public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return PublicKey(self.keytype.removesuffix("-x509"), der_)
        return self

    @property
    def canonical_id(self) -> str:
        """The ID of the bare key: what names its private key file."""
        return self.plain().id

    def verify(self, method: str, sig: bytes, message: bytes) -> bool:
        try:
            key = self.plain()
            if key.keytype == ED25519 and method == "eddsa":
                ed25519.Ed25519PublicKey.from_public_bytes(key.public).verify(sig, message)
                return True
            pub = serialization.load_der_public_key(key.public)
            if (key.keytype == ECDSA and method == "ecdsa"
                    and isinstance(pub, ec.EllipticCurvePublicKey)):
                n = (pub.curve.key_size + 7) // 8
                if len(sig) != 2 * n:
                    return False
                r, s = int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big")
                pub.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
                return True
            if key.keytype == RSA and method == "rsapss" and isinstance(pub, rsa.RSAPublicKey):
                pub.verify(sig, message, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                     hashes.SHA256().digest_size), hashes.SHA256())
                return True
        except (InvalidSignature, ValueError):
            return False
        return False


class PrivateKey:
    """An ECDSA P-256 signing key (what docker's CLI creates and loads)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public(self) -> PublicKey:
        return PublicKey(ECDSA, self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    @property
    def id(self) -> str:
        return self.public.id

    def sign(self, message: bytes) -> tuple[str, bytes]:
        r, s = decode_dss_signature(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
        return "ecdsa", r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def pkcs8(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def encrypted(self, passphrase: str) -> bytes:
        """EncryptedPrivateKeyInfo as notary's utils.ConvertTUFKeyToPKCS8 makes it."""
        salt, iv = secrets.token_bytes(8), secrets.token_bytes(16)
        plain = self.pkcs8()
        pad = 16 - len(plain) % 16
        key = _kdf(passphrase, salt, PBKDF2_ITERATIONS)
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = enc.update(plain + bytes([pad]) * pad) + enc.finalize()
        kdf = der.seq(der.PBKDF2, der.seq(der.octets(salt), der.integer(PBKDF2_ITERATIONS)))
        params = der.seq(kdf, der.seq(der.AES256_CBC, der.octets(iv)))
        return der.seq(der.seq(der.PBES2, params), der.octets(body))


def _kdf(passphrase: str, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA1(), 32, salt, iterations).derive(passphrase.encode())


def _load_private(der_: bytes) -> PrivateKey:
    """A PKCS #8 PrivateKeyInfo (or SEC1) of an ECDSA key, including notary's
    PKCS #8 (version 1) that OpenSSL-based parsers may refuse."""
    try:
        key = serialization.load_der_private_key(der_, None)
    except (ValueError, TypeError):
        items = der.read(der.one(der_, der.SEQUENCE))
        if len(items) < 3 or items[2][0] != der.OCTET_STRING:
            raise ValueError("not a PKCS #8 private key") from None
        key = serialization.load_der_private_key(items[2][1], None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only ECDSA keys are supported")
    return PrivateKey(key)


def decrypt(der_: bytes, passphrase: str) -> PrivateKey:
    """An EncryptedPrivateKeyInfo (PBES2, PBKDF2-HMAC-SHA1, AES-256-CBC)."""
    try:
        alg, body = der.read(der.one(der_, der.SEQUENCE))
        pbes2_oid, params = der.read(alg[1])
        kdf, scheme = der.read(params[1])
        kdf_oid, kdf_params = der.read(kdf[1])
        kp = der.read(kdf_params[1])
        salt, iterations = kp[0][1], int.from_bytes(kp[1][1], "big")
        enc_oid, iv = der.read(scheme[1])
    except (ValueError, IndexError):
        raise ValueError("pkcs8: only PKCS #5 v2.0 supported") from None
    if der.tlv(*pbes2_oid) != der.PBES2 or der.tlv(*kdf_oid) != der.PBKDF2:
        raise ValueError("pkcs8: only PBES2 supported")
    if der.tlv(*enc_oid) != der.AES256_CBC:
        raise ValueError("pkcs8: only AES-256-CBC supported")
    dec = Cipher(algorithms.AES(_kdf(passphrase, salt, iterations)), modes.CBC(iv[1])).decryptor()
    plain = dec.update(body[1]) + dec.finalize()
    try:
        return _load_private(plain[:len(plain) - plain[-1]] if plain and plain[-1] <= 16 else plain)
    except (ValueError, IndexError):
        raise PassphraseError("pkcs8: incorrect password") from None


def decrypt_asking(der_: bytes, name: str, alias: str, passphrases: Passphrases) -> PrivateKey:
    """notary's GetPasswdDecryptBytes: ask until the key opens, the retriever
    gives up, or too many attempts."""
    attempt = 0
    while True:
        try:
            passphrase, giveup = passphrases(name, alias, False, attempt)
        except PassphraseError:
            giveup = True
        if giveup:
            raise PassphraseError("password invalid, operation has failed.")
        if attempt > MAX_ATTEMPTS:
            raise PassphraseError("maximum number of passphrase attempts exceeded")
        try:
            return decrypt(der_, passphrase)
        except PassphraseError:
            attempt += 1


def new_passphrase(name: str, alias: str, passphrases: Passphrases) -> str:
    """The passphrase to encrypt a new key with (notary asks up to 12 times)."""
    attempt = 0
    while True:
        try:
            return passphrases(name, alias, True, attempt)[0]
        except PassphraseError as e:
            if e.giveup or attempt > MAX_ATTEMPTS:
                raise PassphraseError("maximum number of passphrase attempts exceeded") from None
        attempt += 1


# --- PEM with headers -------------------------------------------------------------


@dataclass
class PemBlock:
    type: str
    headers: dict[str, str]
    data: bytes

    def encode(self) -> bytes:
        """Go's pem.Encode: headers sorted, then a blank line; 64-column base64."""
        text = b64(self.data)
        lines = [f"-----BEGIN {self.type}-----"]
        lines += [f"{k}: {self.headers[k]}" for k in sorted(self.headers)]
        if self.headers:
            lines.append("")
        lines += [text[i:i + 64] for i in range(0, len(text), 64)]
        lines.append(f"-----END {self.type}-----")
        return ("\n".join(lines) + "\n").encode()


def pem_decode(raw: bytes) -> PemBlock | None:
    """The first PEM block in `raw`, or None."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    start = text.find("-----BEGIN ")
    if start < 0:
        return None
    head_end = text.find("-----", start + 11)
    if head_end < 0:
        return None
    kind = text[start + 11:head_end]
    end = text.find(f"-----END {kind}-----", head_end)
    if end < 0:
        return None
    headers: dict[str, str] = {}
    body: list[str] = []
    for line in text[head_end + 5:end].strip("\r\n").splitlines():
        if not body and ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip()] = v.strip()
        elif line.strip():
            body.append(line.strip())
    try:
        return PemBlock(kind, headers, base64.b64decode("".join(body), validate=True))
    except ValueError:
        return None


def parse_private_pem(raw: bytes, passphrases: Passphrases | None, name: str = "",
                      alias: str = "encrypted") -> PrivateKey:
    """A private key PEM: PKCS #8 (encrypted: opened with `passphrases`), SEC1
    "EC PRIVATE KEY"."""
    block = pem_decode(raw)
    if block is None:
        raise ValueError("no valid private key found")
    if block.type == "ENCRYPTED PRIVATE KEY":
        if passphrases is None:
            raise PassphraseError("could not decrypt key")
        return decrypt_asking(block.data, name, alias, passphrases)
    if "DEK-Info" in block.headers:
        raise ValueError("legacy PEM encryption is not supported")
    if block.type in ("PRIVATE KEY", "EC PRIVATE KEY"):
        return _load_private(block.data)
    raise ValueError(f"unsupported key type {block.type!r}")


def private_key_role(raw: bytes) -> tuple[str, str] | None:
    """(role, gun) from a private key PEM's headers; None when it isn't one (as
    notary's ExtractPrivateKeyAttributes: public keys and certificates aren't)."""
    block = pem_decode(raw)
    if block is None or not block.type.endswith("PRIVATE KEY"):
        return None
    return block.headers.get("role", ""), block.headers.get("gun", "")


def parse_public_pem(raw: bytes) -> PublicKey:
    """notary's ParsePEMPublicKey: a "PUBLIC KEY" or a "CERTIFICATE"."""
    block = pem_decode(raw)
    if block is None:
        raise ValueError("no valid public key found")
    if block.type == "CERTIFICATE":
        try:
            cert = x509.load_der_x509_certificate(block.data)
        except ValueError as e:
            raise ValueError(f"could not parse provided certificate: {e}") from None
        kind = ECDSA_X509 if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else RSA_X509
        return PublicKey(kind, cert.public_bytes(serialization.Encoding.PEM))
    if block.type == "PUBLIC KEY":
        pub = serialization.load_der_public_key(block.data)
        if isinstance(pub, ec.EllipticCurvePublicKey):
            return PublicKey(ECDSA, block.data)
        if isinstance(pub, rsa.RSAPublicKey):
            return PublicKey(RSA, block.data)
        if isinstance(pub, ed25519.Ed25519PublicKey):
            return PublicKey(ED25519, pub.public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw))
        raise ValueError("unsupported public key type")
    raise ValueError(f'unsupported PEM block type "{block.type}", expected CERTIFICATE or '
                     "PUBLIC KEY")


def public_pem(key: PublicKey, role: str) -> bytes:
    return PemBlock("PUBLIC KEY", {"role": role}, key.public).encode()


# --- root certificates ---------------------------------------------------------------


def root_certificate(key: PrivateKey, gun: str, now: dt.datetime,
                     lifetime: dt.timedelta = dt.timedelta(days=3650)) -> PublicKey:
    """notary's cryptoservice.GenerateCertificate: self-signed, CN = GUN, for code
    signing, valid for notary's ten 365-day years."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gun)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.key.public_key())
            .serial_number(secrets.randbits(128) or 1)
            .not_valid_before(now).not_valid_after(now + lifetime)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key.key, hashes.SHA256()))
    return PublicKey(ECDSA_X509, cert.public_bytes(serialization.Encoding.PEM))


def check_root_certificate(key: PublicKey, gun: str, now: dt.datetime) -> None:
    """notary's trust pinning checks of a root key: a valid certificate for this GUN."""
    if key.keytype not in (ECDSA_X509, RSA_X509):
        raise ValidationError("root key is not a certificate")
    try:
        cert = key.certificate()
    except ValueError as e:
        raise ValidationError(f"could not parse root certificate: {e}") from None
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != [gun]:
        raise ValidationError(f"certificate common name {cn[0] if cn else ''} does not match "
                              f"GUN {gun}")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ValidationError(f"certificate for {gun} is expired or not yet valid")
    if isinstance(cert.signature_hash_algorithm, hashes.SHA1):
        raise ValidationError("certificate uses an insecure signature algorithm")


def private_dirs(path: Path) -> None:
    """mkdir -p with mode 0700 for every directory made (notary's os.MkdirAll)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass


# --- the key store -------------------------------------------------------------------


@dataclass
class KeyInfo:
    id: str
    role: str
    gun: str
    path: Path


class KeyStore:
    """`<trust dir>/private`: `<key ID>.key` files (notary's KeyFileStore)."""

    def __init__(self, trust_dir: Path, passphrases: Passphrases) -> None:
        self.dir = trust_dir / "private"
        self.passphrases = passphrases

    def list(self) -> list[KeyInfo]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".key"):
                continue
            path = self.dir / name
            try:
                attrs = private_key_role(path.read_bytes())
            except OSError:
                continue
            if attrs is not None:
                out.append(KeyInfo(name[:-4], attrs[0], attrs[1], path))
        return out

    def ids_for_role(self, role: str) -> list[str]:
        return sorted(k.id for k in self.list() if k.role == role)

    def has(self, key_id: str) -> bool:
        return (self.dir / f"{key_id}.key").is_file()

    def get(self, key_id: str) -> PrivateKey:
        path = self.dir / f"{key_id}.key"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"signing key not found: {key_id}") from None
        role = (private_key_role(raw) or ("", ""))[0]
        return parse_private_pem(raw, self.passphrases, key_id, role)

    def add(self, key: PrivateKey, role: str, gun: str = "") -> str:
        """Store `key` encrypted with the passphrase for `role`; returns its ID."""
        key_id = key.id
        headers = {"role": role}
        if gun:
            headers["gun"] = gun
        data = PemBlock("ENCRYPTED PRIVATE KEY", headers,
                        key.encrypted(new_passphrase(key_id, role, self.passphrases))).encode()
        private_dirs(self.dir)
        tmp = self.dir / f".{key_id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.dir / f"{key_id}.key")
        return key_id
