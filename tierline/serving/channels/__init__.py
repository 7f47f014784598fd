"""Messaging channels tierline speaks to customers through (WhatsApp today)."""
