"""A customer is the same customer however their number is written."""

from __future__ import annotations

import pytest

from tierline.nlu.directory import CsvCustomerDirectory
from tierline.nlu.phone import customer_key, e164


@pytest.mark.parametrize("written", ["447700900001", "+44 7700 900001", "0044 7700 900001",
                                     "+44 (0)7700-900001".replace("(0)", ""), 447700900001])
def test_every_way_of_writing_a_number_is_one_e164(written):
    assert e164(written) == "+447700900001"


@pytest.mark.parametrize("not_a_number", ["abc", "", "12", "demo-user-7"])
def test_what_is_not_a_phone_number_stays_as_given(not_a_number):
    assert e164(not_a_number) is None
    assert customer_key(not_a_number) == str(not_a_number).strip()


def test_a_vip_written_with_spaces_is_found_from_metas_digits(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,name,tier\n+44 7700 900001,Giulia Rossi,vip\n"
                    "0039 333 123 4567,Marco Bianchi,premium\n", encoding="utf-8")
    directory = CsvCustomerDirectory(path)
    assert directory.tier_of("447700900001") == "vip"
    assert directory.tier_of("+393331234567") == "premium"
    assert directory.tier_of("447700900002") == "standard"
