"""Throwaway TLS material with ``openssl``: a self-signed CA, certificates it signs (server and
client), and files only their owner can read (keys, passwords)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from infra.broker_process import LocalKafkaError
from infra.processes import tail_text

CERT_DAYS = 30  # throwaway: a fresh state folder makes new ones
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc")


def _openssl_binary() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LocalKafkaError("openssl is not on PATH; it makes the secured broker's certificates")
    return openssl


def new_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA in ``folder``: (certificate, key) as ``ca.pem`` and ``ca-key.pem``."""
    ca_pem, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    _openssl(_openssl_binary(), "req", "-x509", *_EC_KEY, "-keyout", ca_key, "-out", ca_pem,
             "-days", str(CERT_DAYS), "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca_pem, ca_key


def sign(ca_pem: Path, ca_key: Path, cn: str, folder: Path, usage: str, extra: str = "") -> tuple[Path, Path]:
    """A new key and a certificate CN=``cn`` signed by the CA, in ``folder``: (key, certificate)."""
    openssl = _openssl_binary()
    key, csr, cert, ext = (folder / f"{cn}{suffix}" for suffix in ("-key.pem", ".csr", "-cert.pem", ".cnf"))
    _openssl(openssl, "req", "-new", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyAgreement\n"
                   f"extendedKeyUsage={usage}\n{extra}"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl(openssl, "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
             "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(CERT_DAYS),
             "-extfile", ext, "-out", cert)
    csr.unlink()
    ext.unlink()
    return key, cert


def issue_client_certificates(ca_pem: Path, ca_key: Path, names: Sequence[str], folder: Path) -> None:
    """Client certificates CN=<name> signed by the CA: ``<name>-cert.pem`` and ``<name>-key.pem``
    (mode 0600) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        key, _ = sign(ca_pem, ca_key, name, folder, "clientAuth")
        key.chmod(0o600)


def _openssl(openssl: str, *args: str | Path) -> None:
    result = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    if result.returncode != 0:
        raise LocalKafkaError(f"openssl {args[0]} failed (exit {result.returncode})",
                              tail_text(result.stderr))


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (keys, passwords)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
