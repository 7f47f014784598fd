"""Order numbers in the flow's format, found however WhatsApp users type them, in four languages,
and never where the format does not allow one."""

from __future__ import annotations

import pytest

from tierline.nlu.bot import ConversationState
from tierline.nlu.flow import load_flow
from tierline.nlu.order_numbers import OrderNumbers, remember

FLOW_FORMAT = load_flow().orders.number_pattern  # "^ND-\d{6}$"
NUMBERS = OrderNumbers(FLOW_FORMAT)


@pytest.mark.parametrize("text, expected", [
    ("where is ND-123456", ["ND-123456"]),
    ("hey my parcel nd123456 still hasnt arrived??", ["ND-123456"]),
    ("order #ND-123456 pls", ["ND-123456"]),
    ("ND 123 456", ["ND-123456"]),
    ("l'ordine nd 223344 nn è ancora arrivato", ["ND-223344"]),
    ("ordine ND–554433 😩 e anche nd-554434", ["ND-554433", "ND-554434"]),
    ("mi pedido: nd_334455. no llega!!", ["ND-334455"]),
    ("hola, el pedido (Nd.665544) porfa", ["ND-665544"]),
    ("oi, meu pedido Nd-445566 ainda não chegou kkk", ["ND-445566"]),
    ("pedido ND-776655 e ND 776655 de novo", ["ND-776655"]),  # the same order once
    ("ND 123456 2 pairs of boots", ["ND-123456"]),
])
def test_order_numbers_as_customers_type_them(text, expected):
    assert [found.number for found in NUMBERS.find_all(text)] == expected


@pytest.mark.parametrize("text", [
    "ND-1234567", "ND123", "and 123456", "end-123456", "NDX123456", "call me on 3331234567",
    "ordine n. 123456", "12345", "meu pedido é 445566"])
def test_no_order_number_where_the_format_has_none(text):
    assert NUMBERS.find_all(text) == []


def test_a_found_number_spans_what_the_customer_wrote():
    text = "ciao nd 223344 grazie"
    [found] = NUMBERS.find_all(text)
    assert text[found.start:found.end] == "nd 223344"


def test_another_format_is_the_flows_own():
    other = OrderNumbers(r"^\d{8}$")
    assert [f.number for f in other.find_all("pedido 12345678, tel 3331234567")] == ["12345678"]


def test_a_conversation_remembers_the_latest_numbers_it_was_given():
    known = remember([], ["ND-000001", "ND-000002"])
    known = remember(known, ["ND-000001"])  # written again: the latest
    assert known == ["ND-000002", "ND-000001"]
    assert remember(known, [f"ND-00001{i}" for i in range(9)])[-1] == "ND-000018"
    assert len(remember(known, [f"ND-00001{i}" for i in range(9)])) == 5
    state = ConversationState("c", order_numbers=known)
    assert ConversationState.from_dict(state.to_dict()).order_numbers == known
    assert state.to_dict()["order_numbers"] is not state.order_numbers  # a copy
