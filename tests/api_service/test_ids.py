"""Email ids: uuid5 of an Idempotency-Key, or random ones drawn from a buffer of kernel randomness."""

from __future__ import annotations

import uuid

from api_service.ids import RandomIds, email_id_for


def test_uuid4_values_are_valid_and_unique_across_refills() -> None:
    ids = RandomIds()
    drawn = [ids.uuid4() for _ in range(1000)]  # 16 KB: several refills of the 4 KiB pool
    assert len(set(drawn)) == 1000
    for value in drawn:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value, "the canonical lower-case form"


def test_uuid4_sets_the_version_and_variant_bits_of_any_random_input() -> None:
    ids = RandomIds()
    for fill in (b"\x00", b"\xff", b"\x5a"):
        ids._pool, ids._offset = fill * 16, 0  # steer the random source to its extremes
        value = ids.uuid4()
        assert value == str(uuid.UUID(bytes=fill * 16, version=4))


def test_hex_ids_are_128_bits() -> None:
    ids = RandomIds()
    values = {ids.hex() for _ in range(600)}
    assert len(values) == 600
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in values)


def test_idempotency_key_gives_a_stable_id_and_none_gives_a_fresh_one() -> None:
    assert email_id_for("shop", "abc") == email_id_for("shop", "abc")
    assert email_id_for("shop", "abc") != email_id_for("shop", "abd")
    assert email_id_for("shop", None) != email_id_for("shop", None)
    assert email_id_for("shop", None, RandomIds()) != email_id_for("shop", None, RandomIds())


def test_two_clients_with_one_key_get_different_ids() -> None:
    """Clients pick keys independently (order-1001 at a shop and at billing): they must not share an object."""
    assert email_id_for("shop", "order-1001") != email_id_for("billing", "order-1001")
    # The separator cannot be forged from printable names and keys: ("a", "b c") and ("a b", "c") differ too.
    assert email_id_for("a", "b c") != email_id_for("a b", "c")


def test_key_derived_ids_are_fixed_forever() -> None:
    """The formula is part of the contract (docs/contract.md): a change maps retries to new objects."""
    assert email_id_for("default", "order-1001") == str(
        uuid.uuid5(uuid.UUID("0b6d2c1e-5a47-4f38-8e19-c3d7a2f45b60"), "default\norder-1001")
    )
    assert email_id_for("default", "order-1001") != str(
        uuid.uuid5(uuid.UUID("6f1c8a52-3f7e-4d2b-9a43-0e5b7c9d2a11"), "order-1001")
    ), "never an id of the key-only formula"
