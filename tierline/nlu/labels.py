"""The fixed label set of the intent model.

The policy, the menu bot and the agent console refer to these names, so they are part of the
public contract: renaming one is a breaking change. The order is the order of the model's
output logits.
"""

from __future__ import annotations

#: The 27 Bitext customer-service intents (``check_invoices`` normalised to ``check_invoice``).
CUSTOMER_SERVICE_INTENTS: tuple[str, ...] = (
    "cancel_order",
    "change_order",
    "change_shipping_address",
    "check_cancellation_fee",
    "check_invoice",
    "check_payment_methods",
    "check_refund_policy",
    "complaint",
    "contact_customer_service",
    "contact_human_agent",
    "create_account",
    "delete_account",
    "delivery_options",
    "delivery_period",
    "edit_account",
    "get_invoice",
    "get_refund",
    "newsletter_subscription",
    "payment_issue",
    "place_order",
    "recover_password",
    "registration_problems",
    "review",
    "set_up_shipping_address",
    "switch_account",
    "track_order",
    "track_refund",
)

SMALL_TALK_INTENTS: tuple[str, ...] = ("greeting", "goodbye", "thanks")

OUT_OF_SCOPE = "out_of_scope"

INTENT_LABELS: tuple[str, ...] = CUSTOMER_SERVICE_INTENTS + SMALL_TALK_INTENTS + (OUT_OF_SCOPE,)
