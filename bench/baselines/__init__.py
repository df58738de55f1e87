"""Servers the bench measures against: the bare-Starlette ceiling and upstream stubs."""
