"""What the project's HTTP servers share (Starlette on uvicorn, decision D22).

:mod:`generator.serving.asgi` binds the socket up front, bounds request
bodies and runs the app; ``python -m generator.serve`` (students over an
OpenAI-compatible API) and the rating page of ``python -m generator.evaluate
--rate`` are built on it.
"""
