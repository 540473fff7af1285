"""Random ids drawn from a buffer of kernel randomness."""

from __future__ import annotations

import uuid

from ingest_common.ids import RandomIds


def test_uuid4_values_are_valid_and_unique_across_refills() -> None:
    ids = RandomIds()
    drawn = [ids.uuid4() for _ in range(1000)]  # 16 KB: several refills of the 4 KiB pool
    assert len(set(drawn)) == 1000
    assert all(uuid.UUID(value).version == 4 for value in drawn)


def test_hex_ids_are_128_bits() -> None:
    ids = RandomIds()
    values = {ids.hex() for _ in range(600)}
    assert len(values) == 600
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in values)
