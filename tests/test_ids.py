"""Request and response ids: real version-4 UUIDs (``gateway.protocol.ids``)."""

import uuid

from gateway.protocol.ids import uuid4_hex, uuid4_str


def test_uuid4_hex_is_a_random_version_4_uuid():
    ids = [uuid4_hex() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, text)


def test_uuid4_str_is_the_hyphenated_form():
    text = uuid4_str()
    parsed = uuid.UUID(text)
    assert (str(parsed), parsed.version) == (text, 4)
