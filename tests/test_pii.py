"""pii.py: every phone format is masked; years, dates, timestamps, ids and quantities are left alone."""
import pytest

from pii import mask_phones

MASKED = [
    ("call 2831823829 now", "bare_ten_digits"),          # the example: no separators at all
    ("call (555) 123-4567 now", "north_american"),
    ("call 555-123-4567 now", "north_american"),
    ("call 555.123.4567 now", "north_american"),
    ("call 555 123 4567 now", "north_american"),
    ("call +1 (555) 123-4567 now", "international"),
    ("call +1-555-123-4567 now", "international"),
    ("call +44 20 7946 0958 now", "international"),
    ("call +33 1 42 68 53 00 now", "international"),
    ("call +8613800138000 now", "international"),        # country code, no separators
    ("call 0044 20 7946 0958 now", "international_00"),  # "00" instead of "+"
    ("call +33.1.42.68.53.00 now", "international"),     # dots, French style
    ("电话13800138000联系我", "china_mobile"),             # inside Chinese text, no spaces around it
    ("手机：138 0013 8000。", "china_mobile"),
    ("手机：138-0013-8000。", "china_mobile"),
    ("座机：010-12345678。", "china_landline"),
    ("座机：(0755) 1234 5678。", "china_landline"),
]


@pytest.mark.parametrize("text,kind", MASKED)
def test_each_format_is_masked(text, kind):
    counts = {}
    masked = mask_phones(text, counts)
    assert "<PHONE>" in masked and not any(ch.isdigit() for ch in masked.replace("<PHONE>", ""))
    assert counts == {"phone": 1, f"phone_{kind}": 1}


LEFT_ALONE = [
    "In 1998 the paper printed 2,692 articles.",  # a year, a count
    "due 2026-12-06 at 12:30:45",                  # a date and a time
    "1998年1月1日，１３８００１３８０００",              # a Chinese date; full-width digits (People's Daily)
    "created_at=1733500000",                       # a Unix timestamp: ten digits starting with 1
    "ts 1733500000123 ms",                         # a millisecond timestamp: 13 digits
    "身份证 110101199003071234",                     # an 18-digit id card number
    "card 4111111111111111",                       # a 16-digit card number
    "ISBN 9787020002207",                          # a 13-digit ISBN
    "total 2831823829.5 tons, or 1,234,567,890 kg",  # quantities
    "version 1.2.3 on 192.168.1.1",                # a version, an IP address
    "+1 2 and +44",                                # a '+' with too few digits
    "x = 86.6025403784; y = -2147483648",           # the tail of a decimal; a negative number
    "Decimal('+35236450.6')",                      # a signed decimal is not a country code
    "version 001.000.008.016",                     # zero-padded dotted numbers
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_what_is_not_a_phone_is_left_alone(text):
    counts = {}
    assert mask_phones(text, counts) == text
    assert counts == {}


def test_counts_add_up_over_calls():
    counts = {}
    mask_phones("2831823829 and 555-123-4567", counts)
    mask_phones("13800138000", counts)
    assert counts == {"phone": 3, "phone_bare_ten_digits": 1, "phone_north_american": 1, "phone_china_mobile": 1}


def test_in_code_only_separated_numbers_count():
    code = "assert f(0xffffffff) == 4294967295\nurlparse('tel:+1-201-555-0123')\n"
    counts = {}
    assert mask_phones(code, counts, is_code=True) == code.replace("+1-201-555-0123", "<PHONE>")
    assert counts == {"phone": 1, "phone_international": 1}
    assert "4294967295" not in mask_phones(code, {})  # as prose, ten bare digits are a phone number
