"""Serving the sandbox: the Starlette app assembly, the uvicorn server and the CLI."""
