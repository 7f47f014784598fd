"""The agent console: a server-rendered web page at ``/console`` where agents sign in with their
token, take escalations from their teams' queue, reply on WhatsApp, label and resolve them, and
read the service's KPIs, in English or Italian. The ticket page's tools (internal notes,
customers' media) and the admins' sandbox ("Try the bot") are routes of their own modules."""

from tierline.serving.console import sandbox, tools
from tierline.serving.console.views import router

router.include_router(tools.router)
router.include_router(sandbox.router)

__all__ = ["router"]
