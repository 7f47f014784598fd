"""tierline's service: FastAPI app, settings, routes. Run time only: no torch here."""
