"""Secrets at rest."""

from __future__ import annotations

import pytest

from storage.crypto import (
    SecretBox,
    constant_time_equals,
    hash_password,
    new_access_key_id,
    new_secret_key,
    verify_password,
)


def test_secret_box_round_trip_and_binding():
    box = SecretBox(b"cluster-secret-one-0123456789")
    sealed = box.seal("wJalrXUtnFEMI", context="CSAAAA")
    assert "wJalrXUtnFEMI" not in sealed
    assert box.open(sealed, context="CSAAAA") == "wJalrXUtnFEMI"
    assert box.seal("x", "c") != box.seal("x", "c")  # random nonce
    with pytest.raises(ValueError):
        box.open(sealed, context="CSBBBB")  # moved to another key's row
    with pytest.raises(ValueError):
        SecretBox(b"another-cluster-secret-xxxxx").open(sealed, context="CSAAAA")


def test_password_hash():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("x", None)
    assert not verify_password("x", "garbage")
    assert hash_password("same") != hash_password("same")  # salted


def test_key_shapes_and_compare():
    ak = new_access_key_id()
    assert ak.startswith("CS") and len(ak) == 20 and ak.isupper() | ak[2:].isalnum()
    assert len(new_secret_key()) == 40
    assert constant_time_equals("abc", "abc") and not constant_time_equals("abc", b"abd")
