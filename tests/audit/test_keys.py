"""The signing key: generated 0600 in data_dir, loaded from a configured file, its public half exported."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from typer.testing import CliRunner

from sqlgate.audit.keys import Signer, load_public_key, public_pem, signed_payload, verify_signature
from sqlgate.audit.storage import chain_id_for
from sqlgate.cli import app
from sqlgate.errors import ConfigError


def test_generated_key_is_private_and_reused(tmp_path):
    path = tmp_path / "audit" / "signing_key.pem"
    first = Signer.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert Signer.load_or_create(path).key_id == first.key_id


def test_signature_round_trip(signer):
    signature = signer.sign("c", 7, "ab" * 32)
    assert verify_signature(signer.public_key, signature, signed_payload("c", 7, "ab" * 32))
    assert not verify_signature(signer.public_key, signature, signed_payload("c", 8, "ab" * 32))
    assert not verify_signature(signer.public_key, "not base64!", signed_payload("c", 7, "ab" * 32))


def test_public_key_loading(signer):
    assert load_public_key(public_pem(signer.public_key).encode()).public_bytes_raw() == (
        signer.public_key.public_bytes_raw()
    )
    with pytest.raises(ConfigError, match="not a PEM"):
        load_public_key(b"garbage")
    ec = generate_private_key(SECP256R1()).public_key()
    pem = ec.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="not an Ed25519"):
        load_public_key(pem)


def test_configured_key_that_is_not_ed25519_is_refused(tmp_path):
    path = tmp_path / "key.pem"
    key = generate_private_key(SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        Signer.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        Signer.load(tmp_path / "missing.pem")


def test_chain_id_is_kept_in_data_dir(tmp_path):
    first = chain_id_for(tmp_path, None)
    assert chain_id_for(tmp_path, None) == first
    assert chain_id_for(tmp_path, "pod-0") == "pod-0"


def test_pubkey_command(tmp_path):
    config = tmp_path / "sqlgate.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    runner = CliRunner()
    missing = runner.invoke(app, ["audit", "pubkey", "-c", str(config)])
    assert missing.exit_code != 0
    signer = Signer.load_or_create(tmp_path / "data" / "audit" / "signing_key.pem")
    result = runner.invoke(app, ["audit", "pubkey", "-c", str(config)])
    assert result.exit_code == 0
    assert result.stdout == public_pem(signer.public_key)
