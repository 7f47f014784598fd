"""WhatsApp Cloud API: webhook payload parsing, signatures, and the Graph API client."""
