"""The day record and its seed are a published contract: the same day and commits give the same raccoon forever."""

import datetime
import hashlib

import numpy as np
import pytest

from raccoon.day import DayRecord, gaussian_noise

DAY = datetime.date(2024, 1, 2)
SHA_A, SHA_B = "a" * 40, "b" * 40
SHA256_A = "a" * 64  # a commit of a repository in git's SHA-256 object format

# Golden values of the record format v1 (see raccoon/day.py). Changing any of them changes every raccoon ever painted.
GOLDEN_RECORD = b"raccoon-day-record v1\ndate 2024-01-02\n" + b"a" * 40 + b"\n" + b"b" * 40 + b"\n"
GOLDEN_SEED = "adb157ac5bb51a030c9fdbcb54a713f84072f770e09fe17b56089315b847ab28"
GOLDEN_NOISE = np.array([0.4167356491088867, 0.8009563088417053, -0.5398097634315491,
                         -1.484708547592163, 1.4596766233444214, -1.0991237163543701], dtype=np.float32)
GOLDEN_EMPTY_DAY_SEED = "7253d520a158d80ed3db2c58fb30ba5883c0faa046d368eda339cbd22e8206dd"
# SHA-256 object names joined v1 as they are: 64 hex digits a line, sorted with the 40-digit ones as strings.
GOLDEN_MIXED_RECORD = (b"raccoon-day-record v1\ndate 2024-01-02\n"
                       + b"a" * 40 + b"\n" + b"a" * 64 + b"\n" + b"b" * 40 + b"\n")
GOLDEN_MIXED_SEED = "53ceec22143ba16c85dfcbb2e675a02273704a5b82eeabf580c908b3fcc2cb31"


def test_golden_record_and_seed():
    record = DayRecord.of(DAY, [SHA_B, SHA_A])
    assert record.encode() == GOLDEN_RECORD
    assert record.seed() == hashlib.sha256(GOLDEN_RECORD).digest()
    assert record.seed().hex() == GOLDEN_SEED


def test_golden_record_with_a_sha256_commit():
    record = DayRecord.of(DAY, [SHA_B, SHA256_A.upper(), SHA_A])
    assert record.commits == (SHA_A, SHA256_A, SHA_B)
    assert record.encode() == GOLDEN_MIXED_RECORD
    assert record.seed().hex() == GOLDEN_MIXED_SEED


def test_golden_noise():
    seed = bytes.fromhex(GOLDEN_SEED)
    noise = gaussian_noise(seed, (6,))
    assert noise.dtype == np.float32
    np.testing.assert_array_equal(noise, GOLDEN_NOISE)
    # the stream is one stream, whatever the shape asked for
    np.testing.assert_array_equal(gaussian_noise(seed, (1, 3, 64, 64)).reshape(-1)[:6], GOLDEN_NOISE)


def test_order_duplicates_case_and_whitespace_do_not_matter():
    reference = DayRecord.of(DAY, [SHA_A, SHA_B]).seed()
    assert DayRecord.of(DAY, [SHA_B, SHA_A]).seed() == reference
    assert DayRecord.of(DAY, [SHA_A, SHA_B, SHA_A, SHA_B]).seed() == reference
    assert DayRecord.of(DAY, [SHA_A.upper(), f"  {SHA_B}\n"]).seed() == reference


def test_one_more_commit_or_another_date_changes_the_seed():
    reference = DayRecord.of(DAY, [SHA_A, SHA_B]).seed()
    assert DayRecord.of(DAY, [SHA_A, SHA_B, "c" * 40]).seed() != reference
    assert DayRecord.of(DAY, [SHA_A]).seed() != reference
    assert DayRecord.of(DAY + datetime.timedelta(days=1), [SHA_A, SHA_B]).seed() != reference


@pytest.mark.parametrize("bad", ["a" * 39, "a" * 41, "g" * 40, "a" * 63, "a" * 65, "g" * 64, "a" * 52, "",
                                 "HEAD", f"{SHA_A} {SHA_B}"])
def test_anything_but_a_full_sha1_or_sha256_is_rejected(bad):
    with pytest.raises(ValueError, match=r"^not a full commit SHA \(40 or 64 hex digits\): "):
        DayRecord.of(DAY, [SHA_A, bad])


def test_a_day_without_commits_has_its_own_seed():
    empty = DayRecord.of(DAY, [])
    assert empty.commits == ()
    assert empty.encode() == b"raccoon-day-record v1\ndate 2024-01-02\n"
    assert empty.seed().hex() == GOLDEN_EMPTY_DAY_SEED
    assert empty.seed() != DayRecord.of(DAY + datetime.timedelta(days=1), []).seed()


def test_noise_is_standard_normal():
    noise = gaussian_noise(bytes(32), (200_000,))
    assert abs(noise.mean()) < 0.01
    assert abs(noise.std() - 1) < 0.01
