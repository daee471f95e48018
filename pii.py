"""
pii.py: personal data masked in text, pattern by pattern. For now: phone numbers, in every common format.

Unlike clean.py's PHONE pattern (which needs separators: "555-123-4567", "+44 20 7946 0958"), this also
masks bare digit runs that are phone numbers ("2831823829", "13800138000", "+8613800138000") and the
Chinese formats (mobile and landline), without masking the digit runs that are not: see mask_phones.
clean.py's e-mail and IPv4 patterns are meant to move here too, so PII has one home.
"""
import re

PLACEHOLDER = "<PHONE>"  # one placeholder for every number: the model learns the format, not the data
NOT_BEFORE = r"(?<![\w+])(?<!\d[.,])"  # not the tail of a number ("86.6025403784") or word, nor a second "+"
NOT_AFTER = r"(?![\w]|[.,]\d)"  # nor its head: "2831823829.5" and "2831823829,000" are quantities

PHONE_FORMATS = {
    # +44 20 7946 0958, +1 (555) 123-4567, +33.1.42.68.53.00, +8613800138000: a country code after "+",
    # then digit groups; E.164 caps a number at 15 digits. After the first group, groups have 2+ digits,
    # so a decimal point is not a separator ("+35236450.6").
    "international": rf"{NOT_BEFORE}\+[1-9]\d{{0,2}}[ .\-]?\(?\d{{1,5}}\)?(?:[ .\-]?\(?\d{{2,5}}\)?){{0,5}}"
                     rf"{NOT_AFTER}",
    # 0044 20 7946 0958, 0086-138-0013-8000: "00" for "+" (dialled from Europe or China); no dots, or
    # "001.000.008.016" would be one
    "international_00": rf"{NOT_BEFORE}00[1-9]\d{{0,2}}[ \-]?\(?\d{{1,5}}\)?(?:[ \-]?\(?\d{{2,5}}\)?){{0,5}}"
                        rf"{NOT_AFTER}",
    # (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567: the North American shape
    "north_american": rf"{NOT_BEFORE}(?:\(\d{{3}}\) ?|\d{{3}}[ .\-])\d{{3}}[ .\-]\d{{4}}{NOT_AFTER}",
    # 13800138000, 138 0013 8000, 138-0013-8000: Chinese mobiles are 11 digits starting 13-19
    "china_mobile": rf"{NOT_BEFORE}1[3-9]\d(?:[ \-]?\d{{4}}){{2}}{NOT_AFTER}",
    # 010-12345678, (0755) 1234 5678, 021 6123 4567: area code starting with 0, then 7-8 digits
    "china_landline": rf"{NOT_BEFORE}(?:\(0\d{{2,3}}\) ?|0\d{{2,3}}[ \-])\d{{3,4}}[ \-]?\d{{4}}{NOT_AFTER}",
    # 2831823829: ten bare digits. A first digit of 2-9, as every North American area code has; a run
    # starting with 1 is left alone, because ten digits starting with 1 is a Unix timestamp (2001-2033).
    # Nor a negative number (-2147483648).
    "bare_ten_digits": rf"{NOT_BEFORE}(?<!-)[2-9]\d{{9}}{NOT_AFTER}",
}


def phone_pattern(formats):
    return re.compile("|".join(f"(?P<{name}>{PHONE_FORMATS[name]})" for name in formats), re.ASCII)


PHONE = phone_pattern(PHONE_FORMATS)
# Source code is full of ten-digit integers (2147483647, 4294967295, IPv4 addresses as ints: our 6 MB
# stdlib sample holds 30, none a phone number), so in code only numbers with separators count.
PHONE_IN_CODE = phone_pattern([name for name in PHONE_FORMATS if name != "bare_ten_digits"])
MIN_DIGITS, MAX_DIGITS = 8, 15  # an international number has a country code and at least 7 more digits
# Every format above holds three digits in a row or a "+" before a digit: a text without either (most
# prose) skips the long pattern, found by a scan ~40x faster. A filter only: it never changes a match.
MUST_CONTAIN = re.compile(r"[0-9]{3}|\+[0-9]")


def mask_phones(text, counts, is_code=False):
    """Replace every phone number by <PHONE>; counts["phone"] += matches, counts["phone_<format>"] too.
    is_code: leave bare ten-digit runs alone (see PHONE_IN_CODE).

    Deliberately left alone, because they are not phone numbers and are everywhere in real text:
      - years and dates: 1998, 2026-12-06, 1998年1月1日, 12/06/2026 (never 10 digits in a run)
      - Unix timestamps: ten digits starting with 1 (1733500000), and 13-digit millisecond ones
      - ids and account numbers: 18-digit Chinese ID cards, 16-digit card numbers, 13-digit ISBNs, order
        numbers: any run longer than the formats above is not cut into a "phone" (they are PII of another
        kind, for their own patterns later)
      - quantities: 2831823829.5, 86.6025403784, -2147483648, 1,234,567,890, 12 345
      - version strings and IP addresses (1.2.3, 192.168.1.1): too few digits per group
    re.ASCII: \\d is 0-9 only, so full-width digits (１３８...) are not matched; People's Daily writes
    every number that way, and none of them is a phone number."""
    def replace(match):
        digits = sum(ch.isdigit() for ch in match.group())
        if match.lastgroup.startswith("international") and not MIN_DIGITS <= digits <= MAX_DIGITS:
            return match.group()  # "+1 2" or a 20-digit run: not a phone number
        counts["phone"] = counts.get("phone", 0) + 1
        key = "phone_" + match.lastgroup
        counts[key] = counts.get(key, 0) + 1
        return PLACEHOLDER
    if not MUST_CONTAIN.search(text):
        return text
    return (PHONE_IN_CODE if is_code else PHONE).sub(replace, text)
