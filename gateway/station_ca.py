"""The station's own certificate authority and the broker's server certificate, made on the Pi at enrollment.

Lockers verify the broker against this CA (its certificate goes into their configs); the CA's key never
leaves the Pi. EC P-256 keys: mbedTLS on the ESP32 handles them with less RAM and time than RSA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .broker import _write_private

CA_YEARS = 30      # a locker has no way to renew its trust anchor in the field
SERVER_YEARS = 20


def default_hosts() -> list[str]:
    """Names and addresses a locker may use for this Pi: its host name, mDNS name and IPv4 addresses."""
    name = socket.gethostname()
    hosts = [name, f"{name}.local", "localhost", "127.0.0.1"]
    tool = shutil.which("hostname")
    if tool:
        out = subprocess.run([tool, "-I"], check=False, capture_output=True, text=True, timeout=5).stdout
        hosts += [a for a in out.split() if "." in a]
    return list(dict.fromkeys(hosts))


def _name(common: str, station: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jincun"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, station),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_station_ca(ca_dir: Path, server_dir: Path, *, station: str, hosts: list[str]) -> dict[str, Path]:
    """Write the CA (ca_dir: ca.pem, ca.key for root alone) and the broker's files (server_dir: ca.pem,
    server.pem, server.key, readable by the broker); return their paths by name."""
    ca_dir, server_dir = Path(ca_dir), Path(server_dir)
    for d in (ca_dir, server_dir):
        d.mkdir(parents=True, exist_ok=True)
    # a day back: a locker's clock set from the gateway may lag a little behind the Pi's
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"jincun station {station} CA", station)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * CA_YEARS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name(f"jincun station {station} broker", station))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365 * SERVER_YEARS))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(_san(hosts), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    paths = {"ca.pem": ca_dir / "ca.pem", "ca.key": ca_dir / "ca.key", "broker ca.pem": server_dir / "ca.pem",
             "server.pem": server_dir / "server.pem", "server.key": server_dir / "server.key"}
    fd = os.open(paths["ca.key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_pem_key(ca_key))
    paths["ca.pem"].write_text(ca_pem)
    # the broker's files go to the broker's user when root writes them (broker._write_private)
    _write_private(paths["broker ca.pem"], ca_pem)
    _write_private(paths["server.pem"], server.public_bytes(serialization.Encoding.PEM).decode())
    _write_private(paths["server.key"], _pem_key(key))
    return paths
