"""The agent console: a server-rendered web page at ``/console`` where agents sign in with their
token, take escalations from their teams' queue, reply on WhatsApp, label and resolve them, and
read the service's KPIs, in English or Italian."""

from tierline.serving.console.views import router

__all__ = ["router"]
