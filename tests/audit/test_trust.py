"""Pinned keys: a log re-signed with a substituted key verifies only when nothing is pinned, and verify says so.

The attacker here replaces the host's signing key and re-signs every
checkpoint and head with it; `audit.trusted_keys` (PEM files or fingerprints)
and `--pubkey` (repeatable) make that fail. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from sqlgate.audit.keys import Signer, fingerprint, public_pem
from sqlgate.audit.log import AuditLog
from sqlgate.audit.verify import EXIT_CODES
from sqlgate.config import load_settings
from sqlgate.errors import ConfigError
from sqlgate.store import StateStore
from tests.audit.attacker import rechain, replace_host_key
from tests.audit.conftest import cli, populate, verify, write_config

HOST_KEY = ("data", "audit", "signing_key.pem")


@pytest.fixture
def kept(tmp_path, config):
    """The deployment's public key as saved off the host before the attack: (PEM file, fingerprint)."""
    path = tmp_path / "kept" / "audit.pub"
    path.parent.mkdir()
    path.write_text(cli("audit", "pubkey", "-c", str(config)).stdout)
    digest = cli("audit", "pubkey", "-c", str(config), "--fingerprint").stdout.strip()
    assert digest == fingerprint(Signer.load(tmp_path.joinpath(*HOST_KEY)).public_key)
    return path, digest


def resign_with_new_key(tmp_path, config):
    """Replace the host's signing key and re-sign the whole log with it."""
    Signer.load_or_create(tmp_path / "attacker.pem")
    rechain(config, Signer.load(tmp_path / "attacker.pem"))
    replace_host_key(tmp_path.joinpath(*HOST_KEY), tmp_path / "attacker.pem")


def test_unpinned_verify_says_it_trusted_the_host_key(config):
    code, report = verify(config)
    assert code == 0
    assert report["trust"]["pinned"] is False
    assert [k["source"] for k in report["trust"]["keys"]] == ["host"]
    assert "trusted the signing key found on this host" in report["trust"]["notes"][0]
    human = cli("audit", "verify", "-c", str(config))
    assert human.exit_code == 0
    assert "NOT pinned" in human.stdout
    assert "trusted the signing key found on this host" in human.stderr


@pytest.mark.parametrize("pin", ["file", "fingerprint"])
def test_resigned_log_fails_against_key_pinned_in_settings(tmp_path, state_url, config, kept, pin):
    resign_with_new_key(tmp_path, config)
    assert verify(config)[0] == 0  # unpinned, the substituted key is simply trusted
    entry = str(kept[0]) if pin == "file" else f"sha256:{kept[1]}"
    pinned = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{entry}']\n")
    code, report = verify(pinned)
    assert code == EXIT_CODES["bad_signature"]
    assert report["trust"]["pinned"] is True
    assert "not trusted" in report["findings"][0]["message"]


@pytest.mark.parametrize("pin", ["file", "fingerprint"])
def test_resigned_log_fails_against_pubkey_option(tmp_path, config, kept, pin):
    resign_with_new_key(tmp_path, config)
    code, report = verify(config, "--pubkey", str(kept[0]) if pin == "file" else kept[1])
    assert code == EXIT_CODES["bad_signature"]
    assert report["trust"]["pinned"] is True
    if pin == "file":
        assert [k["fingerprint"] for k in report["trust"]["keys"]] == [kept[1]]
    else:  # the only key material here is the attacker's: nothing is trusted, and verify says why
        assert report["trust"]["keys"] == []
        assert "matches no key available here" in report["trust"]["notes"][0]


def test_pubkey_option_replaces_the_settings_pins(tmp_path, state_url, config, kept):
    other = tmp_path / "other.pub"
    other.write_text(public_pem(Signer.load_or_create(tmp_path / "other.pem").public_key))
    pinned = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{other}']\n")
    assert verify(pinned)[0] == EXIT_CODES["bad_signature"]
    assert verify(pinned, "--pubkey", str(kept[0]))[0] == 0


def test_pubkey_repeats_for_chains_signed_by_different_keys(tmp_path, state_url, config, kept):
    """Two replicas with keys of their own: both keys pinned, both chains verify; one key alone fails the other."""
    other_dir = tmp_path / "b"
    other_dir.mkdir()
    other = write_config(other_dir / "sqlgate.yaml", other_dir, state_url, chain="replica-b")
    populate(other, count=8)
    other_pub = tmp_path / "kept" / "b.pub"
    other_pub.write_text(cli("audit", "pubkey", "-c", str(other)).stdout)
    code, report = verify(config, "--pubkey", str(kept[0]), "--pubkey", str(other_pub))
    assert code == 0, report
    assert len(report["trust"]["keys"]) == 2
    code, report = verify(config, "--pubkey", str(kept[0]))
    assert code == EXIT_CODES["bad_signature"]
    assert report["findings"][0]["chain"] == "replica-b"
    both = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{kept[0]}', '{other_pub}']\n")
    assert verify(both)[0] == 0


def test_relative_trusted_key_is_read_next_to_the_settings_file(tmp_path, state_url, config, kept):
    pinned = write_config(config, tmp_path, state_url, extra="  trusted_keys: [kept/audit.pub]\n")
    code, report = verify(pinned)
    assert code == 0, report
    assert report["trust"]["keys"][0]["source"] == str(kept[0])


def test_a_key_id_is_too_short_to_pin(tmp_path, state_url, config, kept):
    short = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{kept[1][:16]}']\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(short)
    assert "too short to pin" in str(caught.value)


def test_missing_pinned_key_file_is_a_clear_error(tmp_path, state_url, config):
    pinned = write_config(config, tmp_path, state_url, extra="  trusted_keys: [nowhere.pub]\n")
    result = cli("audit", "verify", "-c", str(pinned))
    assert result.exit_code != 0
    assert "cannot read trusted key" in str(result.exception or result.stderr)


async def test_gateway_refuses_a_signing_key_that_is_not_pinned(tmp_path, state_url, config, kept):
    store = await StateStore.open(state_url)
    try:
        foreign = "sha256:" + "ab" * 32
        pinned = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{foreign}']\n")
        with pytest.raises(ConfigError, match=r"not one of audit\.trusted_keys"):
            AuditLog.from_settings(load_settings(pinned), store)
        pinned = write_config(config, tmp_path, state_url, extra=f"  trusted_keys: ['{kept[1]}']\n")
        assert AuditLog.from_settings(load_settings(pinned), store).signer.key_id == kept[1][:16]
    finally:
        await store.close()
